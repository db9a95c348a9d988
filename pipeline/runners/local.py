"""Runs the pipeline on this machine with LocalDagRunner and summarises the run from ML Metadata."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import time
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf
from absl import logging
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from pipeline import pipeline as tinyml_pipeline
from pipeline.config import ConfigError, PipelineConfig
from pipeline.runners import workdir
from pipeline.tasks.base import DataLayoutError
from pipeline.tasks.common import datasets

_STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "done",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "FAILED",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


@dataclasses.dataclass
class ComponentRun:
    node_id: str
    state: str
    seconds: float


@dataclasses.dataclass
class RunSummary:
    """What one local run did, read back from ML Metadata."""

    pipeline_name: str
    run_id: str
    wall_seconds: float
    components: List[ComponentRun]
    eval_accuracy: Optional[float]
    per_class_accuracy: Dict[str, float]
    blessed: Optional[bool]
    pipeline_root: str
    metadata_path: str
    model_uri: Optional[str]
    quantization: Dict[str, object]
    size_gate: Dict[str, object]
    evaluation_uri: Optional[str]
    ingestion_report: Optional[str]
    baseline_accuracy: Optional[float] = None
    artifact_uris: Dict[str, Dict[str, str]] = dataclasses.field(default_factory=dict)
    artifact_ids: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)  # ML Metadata ids
    release: Dict[str, object] = dataclasses.field(default_factory=dict)
    skipped: Dict[str, int] = dataclasses.field(default_factory=dict)  # skip reason -> files, from ingestion
    search: Dict[str, object] = dataclasses.field(default_factory=dict)  # the ModelSearch's outcome, if it ran
    test: Dict[str, object] = dataclasses.field(default_factory=dict)  # the TestSetEvaluator's figures, if it ran
    streaming: Dict[str, object] = dataclasses.field(default_factory=dict)  # the StreamingEvaluator's, if any

    @property
    def unfinished(self) -> List[ComponentRun]:
        """Components that did not finish (failed, or left running by a process that died)."""
        return [c for c in self.components if c.state not in ("done", "cached")]

    def to_text(self) -> str:
        lines = [f"Pipeline '{self.pipeline_name}', run {self.run_id}: {self.wall_seconds:.1f} s"]
        for c in self.components:
            lines.append(f"  {c.node_id:<32} {c.state:<7} {c.seconds:7.1f} s")
        if self.search:
            lines.append(f"Model search:   {self.search['candidates']} candidates, {self.search['rejected_before_training']} "
                         f"rejected before training (budgets), {self.search['trials']} trials; winner: eval accuracy "
                         f"{self.search.get('winner_val_accuracy', float('nan')):.4f}, est. "
                         f"{self.search.get('winner_latency_ms', float('nan')):.1f} ms, arena "
                         f"{self.search.get('winner_arena_bytes', '?')} B ({self.search['uri']})")
        if self.eval_accuracy is not None:
            verdict = "blessed" if self.blessed else "NOT blessed"
            lines.append(f"Eval accuracy: {self.eval_accuracy:.4f} ({verdict})")
        if self.per_class_accuracy:
            lines.append("  per class: " + ", ".join(
                f"{label} {value:.2f}" for label, value in sorted(self.per_class_accuracy.items())))
        if self.test:
            lines.append(f"Test accuracy:  {self.test['quantized_accuracy']:.4f} int8 on TFLite Micro, float "
                         f"{self.test['float_accuracy']:.4f} ({self.test['examples']} held-out examples, measured "
                         "once after the gates)")
        lines.append(f"Artifacts:      {self.pipeline_root}")
        lines.append(f"ML Metadata:    {self.metadata_path}")
        q = self.quantization
        if q:
            verdict = "blessed" if q.get("blessed") else f"NOT blessed: {q.get('reason')}"
            lines.append(f"Quantized ({q['mode']}): {q['model_bytes']} bytes; accuracy float {q['float_accuracy']:.4f}, "
                         f"{q['mode']} {q['quantized_accuracy']:.4f} (drop {100 * q['accuracy_drop']:.2f} points; "
                         f"{verdict})")
        if self.size_gate:
            g = self.size_gate
            lines.append(f"MCU size gate:  {'fits ' + g['target'] if g['blessed'] else 'NOT blessed: ' + g['reason']}"
                         f" (arena {g['arena_bytes']} bytes; report {g['report']})")
        if self.streaming:
            st = self.streaming
            lines.append(f"Streaming:      {st['audio_seconds'] / 60:.1f} min of audio on TFLite Micro in "
                         f"{st['wall_seconds']:.1f} s, inference every {st['inference_stride_ms']} ms: threshold "
                         f"{st['detection_threshold']}, {st['false_accepts_per_hour']:.2f} false accepts/hour, "
                         f"false-reject rate {st['false_reject_rate']:.3f} "
                         f"({'blessed' if st['blessed'] else 'NOT blessed: ' + str(st['reason'])})")
        if self.release.get("pushed"):
            lines.append(f"OTA release:    {self.release['destination']} ({self.release['digest']})")
        else:
            lines.append("OTA release:    nothing pushed (a blessing is negative)")
        if self.model_uri:
            lines.append(f"Model:          {self.model_uri}")
        if q.get("uri"):
            lines.append(f"TFLite model:   {q['uri']}")
        if self.evaluation_uri:
            lines.append(f"Evaluation:     {self.evaluation_uri}")
        if self.skipped:
            top = sorted(self.skipped.items(), key=lambda item: (-item[1], item[0]))
            lines.append(f"Skipped files:  {sum(self.skipped.values())}: " + "; ".join(
                f"{count} x {reason}" for reason, count in top[:3]) + ("; ..." if len(top) > 3 else "")
                + " (every file and reason in the data report)")
        if self.ingestion_report:
            lines.append(f"Data report:    {self.ingestion_report}")
        return "\n".join(lines)


def check_schema_labels(config: PipelineConfig) -> None:
    """Refuses a curated schema whose label domain differs from the config's classes
    (nothing to check when the config names none and SchemaGen infers it)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    if not config.data.schema:
        return
    try:
        with tf.io.gfile.GFile(config.data.schema, "r") as f:
            schema = text_format.Parse(f.read(), schema_pb2.Schema())
    except (tf.errors.NotFoundError, FileNotFoundError) as err:
        raise ConfigError(f"The curated schema {config.data.schema} (data.schema in {config.source}) "
                          "does not exist. Point data.schema at a TFDV schema file.") from err
    except text_format.ParseError as err:
        raise ConfigError(f"The curated schema {config.data.schema} is not a valid TFDV schema: {err}. "
                          "Fix the file (text-format tensorflow_metadata Schema).") from err
    config.family.check_schema(config, schema)
    domain = next((d for d in schema.string_domain if d.name == "label"), None)
    expected = set(config.data.labels)
    if domain is None or set(domain.value) != expected:
        found = sorted(domain.value) if domain else []
        raise ConfigError(
            f"The curated schema {config.data.schema} lists the labels {found}, but the config "
            f"{config.source} trains the classes {sorted(expected)}. Make the schema's string_domain "
            "'label' list exactly the config's classes, or point data.schema at a schema made for them.")


def prepare_data(config: PipelineConfig, progress: Optional[Callable[[int, int], None]] = None,
                 force: bool = False) -> bool:
    """Generates the synthetic dataset when the config uses it and it is absent or stale (or ``force``).

    Returns:
        True when data was generated.

    Raises:
        ConfigError: when the task family has no synthetic dataset.
    """
    if not config.uses_synthetic_data:
        return False
    family = config.family
    spec = family.generation_spec(config)
    if spec is None:
        raise ConfigError(f"Config file {config.source}: field 'data.root' is null, but the task family "
                          f"'{family.name}' has no synthetic dataset to generate. Set data.root to your dataset.")
    if force:
        family.generate_dataset(spec, config.data_root, progress=progress)
        return True
    return datasets.ensure_dataset(spec, config.data_root, family.generate_dataset, progress=progress)


def check_config(config: PipelineConfig) -> None:
    """Checks the config against the board catalogue and the curated schema (no data needed)."""
    from components.mcu_size_gate import devices

    try:
        catalogue = devices.load_catalogue(config.boards_dirs)
    except (devices.DeviceProfileError, OSError) as err:
        raise ConfigError(f"{err} (boards_dirs in {config.source})") from err
    for field, name in [("target_device", config.target_device)] + [("extra_targets", n) for n in config.extra_targets]:
        try:
            devices.get_profile(name, catalogue)
        except devices.DeviceProfileError as err:
            raise ConfigError(f"{err} ({field} in {config.source})") from err
    check_schema_labels(config)
    check_hyperparameters(config)


def check_hyperparameters(config: PipelineConfig) -> None:
    """Refuses a training.hyperparameters folder the Importer and the Trainer could not use (the search,
    when on, replaces it, so nothing is checked then)."""
    folder = config.training.hyperparameters
    if config.search.enabled or not folder or "://" in folder:
        return
    path = os.path.join(folder, "best_hyperparameters.txt")
    problem = None
    if not os.path.isdir(folder):
        problem = "does not exist"
    elif sorted(os.listdir(folder)) != ["best_hyperparameters.txt"]:
        problem = f"must hold exactly best_hyperparameters.txt (it holds {', '.join(sorted(os.listdir(folder))) or 'nothing'})"
    else:
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f).get("values")
            if not isinstance(values, dict):
                problem = f"{path} has no 'values' (KerasTuner's HyperParameters config)"
        except (OSError, ValueError, AttributeError) as err:
            problem = f"{path} is not a KerasTuner HyperParameters config ({err})"
    if problem:
        raise ConfigError(
            f"Config file {config.source}: field 'training.hyperparameters' is {folder}, which {problem}. Fix: run "
            "'tinyml-tfx search --config ... --output DIR' to write one, or set training.hyperparameters: null to "
            "train training.model.")


def preflight(config: PipelineConfig) -> None:
    """Checks what would otherwise fail deep inside a component, with a message that says the fix."""
    check_config(config)
    try:
        config.family.check_layout(config)
    except DataLayoutError as err:
        raise ConfigError(f"{err} (data.root in {config.source})") from err


def ensure_dev_signing_key(config: PipelineConfig) -> None:
    """Creates the local run's development signing key (WORKDIR/keys) the first time it is needed;
    never for a remote registry (the pusher then asks for a real key)."""
    from components.ota import publish

    key_file = config.release.signing_key_file
    if publish.ensure_development_key(key_file, config.release.registry or ""):
        logging.warning("Created a development signing key %s (public key %s.pub). Production releases are "
                        "signed with your own key: `tinyml-tfx keys generate`, then set release.signing_key_file.",
                        key_file, key_file)


def run(config: PipelineConfig, run_id: Optional[str] = None,
        lock: Optional[workdir.WorkdirLock] = None, until: Optional[str] = None) -> RunSummary:
    """Runs the pipeline with LocalDagRunner (SQLite ML Metadata) and returns this run's summary.

    Args:
        config: the config, with its work directory set.
        run_id: the run's id (default: a new one, as TFX makes them); the summary is this run's.
        lock: the work directory's lock when the caller already holds it; otherwise the run takes it.
        until: a node id where the run stops (``tinyml-tfx search`` stops after the ModelSearch).

    Raises:
        workdir.WorkdirBusy: when another run holds the work directory.
    """
    preflight(config)
    run_id = run_id or workdir.new_run_id()
    with contextlib.ExitStack() as stack:
        if lock is None:
            stack.enter_context(workdir.WorkdirLock(config.workdir, run_id))
        for abandoned in workdir.mark_abandoned_executions(config.metadata_path):
            logging.warning("Execution %d (%s) of run %s was left running by a process that died; marked CANCELED. "
                            "Its partial outputs are marked ABANDONED: %s", abandoned.execution_id,
                            abandoned.node_id, abandoned.run_id, ", ".join(abandoned.output_uris) or "none")
        ensure_dev_signing_key(config)
        os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
        start = time.time()
        tfx.orchestration.LocalDagRunner().run_with_ir(compile_for_run(config, run_id, until))
        return summarise(config, time.time() - start, run_id=run_id)


def compile_for_run(config: PipelineConfig, run_id: str, until: Optional[str] = None,
                    parameters: Optional[Dict[str, Any]] = None):
    """The pipeline's IR with ``run_id`` as its run id, so that the caller knows which run is its own.

    Every run parameter is bound here, to its config default or to its value in ``parameters``
    (name -> value, e.g. the TrainArgs with a step budget): once bound, a parameter cannot be
    substituted again.
    """
    from tfx.dsl.compiler import compiler, constants
    from tfx.orchestration.portable import runtime_parameter_utils

    pipeline_ir = compiler.Compiler().compile(tinyml_pipeline.create_pipeline(config, until=until))
    # The run parameters' values are bound here, not left to their compiled defaults: TFX 1.21's compiler
    # drops a default that is falsy (compiler_utils: `if default_value:`), so a requirement of 0 would
    # leave its parameter unset and stop the run ("Parameter value not ready").
    values = {name: p.default for name, p in tinyml_pipeline.runtime_parameters(config).items()}
    unknown = sorted(set(parameters or {}) - set(values))
    if unknown:
        raise ValueError(f"The pipeline has no run parameter {', '.join(unknown)}; its parameters are "
                         f"{', '.join(sorted(values))}.")
    runtime_parameter_utils.substitute_runtime_parameter(
        pipeline_ir, {**values, **(parameters or {}), constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
    return pipeline_ir


def run_states(config: PipelineConfig, run_id: str) -> Dict[str, str]:
    """Each component of run ``run_id`` and its state ("done", "cached", "FAILED", "running", ...)."""
    if not os.path.exists(config.metadata_path):
        return {}
    store = _store(config)
    run_ctx = store.get_context_by_type_and_name("pipeline_run", run_id)
    if run_ctx is None:
        return {}
    return {node_id_of(store, e): _STATE_NAMES.get(e.last_known_state, "?")
            for e in sorted(store.get_executions_by_context(run_ctx.id), key=lambda e: e.id)}


def failure_message(config: PipelineConfig, run_id: str, error: BaseException, log_path: str) -> str:
    """One paragraph on why run ``run_id`` stopped: the component, the cause, the fix when known, the log."""
    from components.errors import PipelineInputError

    states = run_states(config, run_id)
    stopped = [node for node, state in states.items() if state in ("FAILED", "running", "new")]
    where = f" in {', '.join(stopped)}" if stopped else ""
    if isinstance(error, PipelineInputError):
        return f"The run stopped{where}. {error} (Full log: {log_path}.) Nothing after it ran and nothing was released."
    return (f"The pipeline failed{where}: {type(error).__name__}: {error}. Nothing after it ran and nothing was "
            f"released. The full log, with the traceback, is in {log_path}.")


def _store(config: PipelineConfig) -> metadata_store.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


def latest_run_context(store: metadata_store.MetadataStore, pipeline_name: str):
    runs = [c for c in store.get_contexts_by_type("pipeline_run")]
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_ctx is not None:
        in_pipeline = {c.id for c in store.get_children_contexts_by_context(pipeline_ctx.id)}
        runs = [c for c in runs if not in_pipeline or c.id in in_pipeline]
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id)) if runs else None


def node_id_of(store: metadata_store.MetadataStore, execution) -> str:
    for ctx in store.get_contexts_by_execution(execution.id):
        if ctx.type == "node" or store.get_context_types_by_id([ctx.type_id])[0].name == "node":
            return ctx.name.split(".", 1)[-1]
    return execution.type


class UnknownRun(ValueError):
    """The run id names no run of the pipeline; the message lists the latest ones."""


def summarise(config: PipelineConfig, wall_seconds: float, run_id: Optional[str] = None) -> RunSummary:
    """Reads a run of ``config``'s pipeline back from ML Metadata: ``run_id``, else the latest.

    Raises:
        UnknownRun: when ``run_id`` names no run of this pipeline.
    """
    store = _store(config)
    run_ctx = latest_run_context(store, config.pipeline_name)
    if run_id is not None:
        run_ctx = store.get_context_by_type_and_name("pipeline_run", run_id)
        if run_ctx is None:
            known = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.create_time_since_epoch)
            raise UnknownRun(f"No run '{run_id}' of '{config.pipeline_name}' in {config.metadata_path}; the latest "
                             f"are: {', '.join(c.name for c in known[-5:]) or 'none'}.")
    executions = store.get_executions_by_context(run_ctx.id) if run_ctx else []
    components = []
    outputs: Dict[str, Dict[str, Any]] = {}
    # Executions are created as the runner reaches each node: their ids follow the DAG's order.
    for execution in sorted(executions, key=lambda e: e.id):
        node = node_id_of(store, execution)
        seconds = max(0.0, (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000)
        components.append(ComponentRun(node, _STATE_NAMES.get(execution.last_known_state, "?"), seconds))
        outputs[node] = _output_artifacts(store, execution.id)

    accuracy, blessed, per_class, baseline = None, None, {}, None
    uris = {node: {key: a.uri for key, a in arts.items()} for node, arts in outputs.items()}
    evaluation_uri = uris.get(tinyml_pipeline.EVALUATOR, {}).get("evaluation")
    blessing_uri = uris.get(tinyml_pipeline.EVALUATOR, {}).get("blessing")
    if evaluation_uri:
        accuracy = overall_metric(evaluation_uri, "sparse_categorical_accuracy")
        baseline = overall_metric(evaluation_uri, "sparse_categorical_accuracy", model_name="baseline")
        per_class = metric_by_slice(evaluation_uri, "sparse_categorical_accuracy", "label")
    if blessing_uri:
        blessed = tf.io.gfile.exists(os.path.join(blessing_uri, "BLESSED"))
    examples_uri = uris.get(config.family.example_gen_id, {}).get("examples")
    report = os.path.join(examples_uri, "ingestion_report.json") if examples_uri else None
    report = report if report and tf.io.gfile.exists(report) else None
    return RunSummary(
        pipeline_name=config.pipeline_name,
        run_id=run_ctx.name if run_ctx else "-",
        wall_seconds=wall_seconds,
        components=components,
        eval_accuracy=accuracy,
        per_class_accuracy=per_class,
        blessed=blessed,
        pipeline_root=config.pipeline_root,
        metadata_path=config.metadata_path,
        model_uri=uris.get(tinyml_pipeline.TRAINER, {}).get("model"),
        quantization=_quantization(outputs.get(tinyml_pipeline.QUANTIZER, {})),
        size_gate=_size_gate(outputs.get(tinyml_pipeline.SIZE_GATE, {}), config.target_device),
        evaluation_uri=evaluation_uri,
        ingestion_report=report,
        baseline_accuracy=baseline,
        artifact_uris=uris,
        artifact_ids={node: {key: a.id for key, a in arts.items()} for node, arts in outputs.items()},
        release=_release(outputs.get(tinyml_pipeline.PUSHER, {})),
        skipped=_skip_reasons(report),
        search=_search(outputs.get(tinyml_pipeline.MODEL_SEARCH, {})),
        test=_test(outputs.get(tinyml_pipeline.TEST_EVALUATOR, {})),
        streaming=_streaming(outputs.get(tinyml_pipeline.STREAMING_EVALUATOR, {})),
    )


def _test(artifacts: Dict[str, Any]) -> Dict[str, object]:
    evaluation = artifacts.get("evaluation")
    if evaluation is None or "examples" not in evaluation.custom_properties:
        return {}
    return {key: _value(value) for key, value in evaluation.custom_properties.items()} | {"uri": evaluation.uri}


def _search(artifacts: Dict[str, Any]) -> Dict[str, object]:
    results = artifacts.get("tuner_results")
    if results is None or "candidates" not in results.custom_properties:
        return {}
    return {key: _value(value) for key, value in results.custom_properties.items()} | {"uri": results.uri}


def _skip_reasons(ingestion_report: Optional[str]) -> Dict[str, int]:
    """How many files the ExampleGen skipped, per reason."""
    if not ingestion_report:
        return {}
    with tf.io.gfile.GFile(ingestion_report, "r") as f:
        skipped = json.load(f).get("skipped", [])
    return dict(collections.Counter(item.get("reason", "?") for item in skipped))


def _output_artifacts(store: metadata_store.MetadataStore, execution_id: int) -> Dict[str, Any]:
    """The output artifacts (MLMD protos) of one execution, by output key."""
    found = {}
    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        if event.artifact_id in artifacts:
            found[key] = artifacts[event.artifact_id]
    return found


def _value(value) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _quantization(artifacts: Dict[str, Any]) -> Dict[str, object]:
    model, blessing = artifacts.get("quantized_model"), artifacts.get("blessing")
    if model is None:
        return {}
    result: Dict[str, object] = {k: _value(v) for k, v in model.custom_properties.items()}
    result["uri"] = model.uri
    if blessing is not None:
        result["blessed"] = bool(_value(blessing.custom_properties["blessed"]))
        result["reason"] = _value(blessing.custom_properties["reason"])
    return result


def _candidate_value(slice_metrics, metric_name: str, model_name: str = "candidate") -> Optional[float]:
    names = ("", "candidate") if model_name == "candidate" else (model_name,)
    for item in slice_metrics.metric_keys_and_values:
        key = item.key
        if (key.name == metric_name and not key.is_diff and key.model_name in names
                and item.value.HasField("double_value")):
            return float(item.value.double_value.value)
    return None


def _size_gate(artifacts: Dict[str, Any], target: str) -> Dict[str, object]:
    blessing, report = artifacts.get("blessing"), artifacts.get("report")
    if blessing is None or report is None:
        return {}
    return {"target": target, "blessed": bool(_value(blessing.custom_properties["blessed"])),
            "reason": _value(blessing.custom_properties["reason"]),
            "arena_bytes": _value(report.custom_properties["arena_bytes"]),
            "report": os.path.join(report.uri, "device_report.html")}


def _streaming(artifacts: Dict[str, Any]) -> Dict[str, object]:
    evaluation, blessing = artifacts.get("evaluation"), artifacts.get("blessing")
    if evaluation is None or blessing is None:
        return {}
    return {**{k: _value(v) for k, v in evaluation.custom_properties.items()}, "uri": evaluation.uri,
            "blessed": bool(_value(blessing.custom_properties["blessed"])),
            "reason": _value(blessing.custom_properties["reason"])}


def _release(artifacts: Dict[str, Any]) -> Dict[str, object]:
    pushed = artifacts.get("pushed_model")
    if pushed is None:
        return {}
    return {key: _value(value) for key, value in pushed.custom_properties.items()} | {
        "pushed": bool(_value(pushed.custom_properties["pushed"])), "uri": pushed.uri,
        "destination": _value(pushed.custom_properties["pushed_destination"])
        if "pushed_destination" in pushed.custom_properties else None}


def overall_metric(evaluation_uri: str, metric_name: str, model_name: str = "candidate") -> Optional[float]:
    """A metric of the overall slice from an Evaluator output (the candidate's, or the baseline's), or None."""
    import tensorflow_model_analysis as tfma

    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if not slice_metrics.slice_key.single_slice_keys:
            return _candidate_value(slice_metrics, metric_name, model_name)
    return None


def metric_by_slice(evaluation_uri: str, metric_name: str, feature: str) -> Dict[str, float]:
    """A metric of every slice on one feature (e.g. accuracy per class), keyed by the feature value."""
    import tensorflow_model_analysis as tfma

    values = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        keys = slice_metrics.slice_key.single_slice_keys
        if len(keys) == 1 and keys[0].column == feature:
            value = _candidate_value(slice_metrics, metric_name)
            if value is not None:
                values[keys[0].bytes_value.decode()] = value
    return values
