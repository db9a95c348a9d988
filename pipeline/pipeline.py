"""The TFX pipeline, defined once for every task family and every runner.

``create_pipeline`` is pure: it builds the component graph from the config and
touches nothing, so the local runner, the Kubeflow compiler and the tests all get
the same pipeline. What differs between task families (the ExampleGen, the Transform
and Trainer modules, the firmware's input processing, the model card's words) comes
from the config's ``TaskFamily`` (``pipeline/tasks/base.py``).
"""

from __future__ import annotations

import hashlib
import importlib
import pathlib
from typing import Any, Dict, List, Optional

import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tensorflow_model_analysis.proto import config_pb2 as tfma_config
from tfx import v1 as tfx
from tfx.dsl.placeholder import placeholder_base

from components.ingestion import EVAL, TEST, TRAIN
from components.data_validation_gate.component import DataValidationGate
from components.mcu_size_gate.component import McuSizeGate
from components.model_search.component import ModelSearch
from components.ota import model_card
from components.ota_pusher.component import OtaPusher
from components.test_set_evaluator.component import TestSetEvaluator
from components.tflite_quantizer.component import TFLiteQuantizer
from components.transform.component import Transform
from pipeline.config import PipelineConfig
from pipeline.tasks.common import search as search_lib
from pipeline.tasks.common.datasets import dataset_manifests
from pipeline.tasks.common.training import FEATURE_SIGNATURE

# Node ids, as they appear in ML Metadata and in the run summary (the ExampleGen's is the
# task family's example_gen_id).
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "ImportSchemaGen"
INFERRED_SCHEMA_GEN = "SchemaGen"   # when the config names no curated schema
VALIDATOR = "DataValidationGate"
TRANSFORM = "Transform"
MODEL_SEARCH = "ModelSearch"
HYPERPARAMETERS_IMPORTER = "hyperparameters_importer"
TRAINER = "Trainer"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
QUANTIZER = "TFLiteQuantizer"
SIZE_GATE = "McuSizeGate"
TEST_EVALUATOR = "TestSetEvaluator"
STREAMING_EVALUATOR = "StreamingEvaluator"   # when the task family has one (keyword spotting)
PUSHER = "OtaPusher"


SEARCH_TUNER_FN = "pipeline.tasks.common.search.tuner_fn"

# Knobs a user may change per run without recompiling (Kubeflow run parameters); the
# local runner takes their defaults, which come from the config.
TARGET_DEVICE_PARAMETER = "target_device"
MAX_QUANTIZATION_DROP_PARAMETER = "max_quantization_drop"
CALIBRATION_EXAMPLES_PARAMETER = "calibration_examples"
# TFX parameterises proto settings only as whole JSON documents; `tinyml-tfx submit` offers
# the two knobs inside them by name (min_accuracy, train_steps; see RUN_PARAMETER_SHORTHANDS).
TRAIN_ARGS_PARAMETER = "train_args"     # the Trainer's TrainArgs; num_steps is the training budget
EVAL_CONFIG_PARAMETER = "eval_config"   # TFMA's EvalConfig; its accuracy lower bound is the floor


def runtime_parameters(config: PipelineConfig) -> Dict[str, Any]:
    """The per-run knobs, as TFX RuntimeParameters defaulting to the config's values."""
    return {
        TARGET_DEVICE_PARAMETER: tfx.dsl.experimental.RuntimeParameter(
            name=TARGET_DEVICE_PARAMETER, ptype=str, default=config.target_device),
        MAX_QUANTIZATION_DROP_PARAMETER: tfx.dsl.experimental.RuntimeParameter(
            name=MAX_QUANTIZATION_DROP_PARAMETER, ptype=float, default=config.requirements.max_quantization_drop),
        CALIBRATION_EXAMPLES_PARAMETER: tfx.dsl.experimental.RuntimeParameter(
            name=CALIBRATION_EXAMPLES_PARAMETER, ptype=int, default=config.quantization.calibration_examples),
        TRAIN_ARGS_PARAMETER: tfx.dsl.experimental.RuntimeParameter(
            name=TRAIN_ARGS_PARAMETER, ptype=str, default=json_format.MessageToJson(train_args(config))),
        EVAL_CONFIG_PARAMETER: tfx.dsl.experimental.RuntimeParameter(
            name=EVAL_CONFIG_PARAMETER, ptype=str, default=json_format.MessageToJson(eval_config(config))),
        **config.family.runtime_parameters(config),
    }


def train_args(config: PipelineConfig) -> Any:
    """The Trainer's TrainArgs: the train split; no step budget (the config's epochs run in full)."""
    del config  # the budget is a per-run knob (train_steps), not a config setting
    return tfx.proto.TrainArgs(splits=[TRAIN])


def with_train_steps(train_args_json: str, steps: int) -> str:
    """``train_args_json`` with a training budget of ``steps`` optimizer steps."""
    if steps <= 0:
        raise ValueError(f"train_steps must be a positive number of steps, not {steps}.")
    args = json_format.Parse(train_args_json, tfx.proto.TrainArgs())
    args.num_steps = steps
    return json_format.MessageToJson(args)


def with_min_accuracy(eval_config_json: str, floor: float) -> str:
    """``eval_config_json`` with ``floor`` as the accuracy the Evaluator blesses at."""
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"min_accuracy is a fraction between 0 and 1, not {floor}.")
    config = json_format.Parse(eval_config_json, tfma.EvalConfig())
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name == "SparseCategoricalAccuracy":
                for per_slice in metric.per_slice_thresholds:
                    per_slice.threshold.value_threshold.lower_bound.value = floor
    return json_format.MessageToJson(config)


# Named knobs inside the JSON run parameters: name -> (run parameter, type, how to apply).
RUN_PARAMETER_SHORTHANDS = {
    "min_accuracy": (EVAL_CONFIG_PARAMETER, float, with_min_accuracy),
    "train_steps": (TRAIN_ARGS_PARAMETER, int, with_train_steps),
}


COMMON_TASK_PACKAGE = "pipeline.tasks.common"   # what every family's modules build on


def task_code_fingerprint(*packages: str) -> str:
    """A hash of task code: the ``.py`` files of ``packages`` (a family's, and the shared ones).

    Transform, ModelSearch and Trainer name their functions by module path, which TFX's
    cache cannot see into; this hash in their custom_config makes a code change re-run them.
    """
    digest = hashlib.sha256()
    for package in packages:
        task_dir = pathlib.Path(importlib.import_module(package).__file__).parent
        for path in sorted(task_dir.glob("*.py")):
            digest.update(f"{package}/{path.name}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _blessed(blessing_channel):
    wrapped = blessing_channel.future()
    # future() presets the key to '_<producer>.<output>'. The KFP v2 compiler keeps a preset key in
    # the trigger condition although the pusher takes the channel under its own input name, so
    # the compiled condition would name an input the task does not have. Without a preset key,
    # both compilers fill in the consuming task's input key.
    wrapped.set_key(None)
    return wrapped[0].custom_property("blessed") == 1


def uses_synthetic_data(config: PipelineConfig) -> bool:
    """Whether the model learns from generated data: the config generates it, or the data
    root is a generated dataset (its manifest says so)."""
    return config.uses_synthetic_data or any(
        m.get("synthetic") for m in dataset_manifests(config.data_root, bool(config.data.training_spans)))


def card_text(config: PipelineConfig) -> model_card.CardText:
    """The model card's words for this task and data (the release's card and the run report's)."""
    return config.family.card_text(config, synthetic=uses_synthetic_data(config))


def transform_config(config: PipelineConfig) -> Dict[str, Any]:
    """What ``preprocessing_fn`` receives as ``custom_config``: the family's settings and its code's hash."""
    family = config.family
    return {**family.transform_config(config),
            "code_fingerprint": task_code_fingerprint(family.code_package, COMMON_TASK_PACKAGE)}


def model_settings(config: PipelineConfig) -> Dict[str, Any]:
    """What the family's ``build_model(hp, settings)`` needs (the ModelSearch and the Trainer pass it)."""
    family = config.family
    return {"input_shape": list(family.model_input_shape(config)), "classes": len(config.data.labels),
            "training": _training_config(config), "label_key": family.label_key}


def search_config(config: PipelineConfig) -> Dict[str, Any]:
    """The ModelSearch's ``custom_config``: the family's space, the board and budgets, the schedule."""
    s = config.search
    return {
        **transform_config(config),
        search_lib.SEARCH_MODULE_KEY: config.family.search_module,
        search_lib.SETTINGS_KEY: model_settings(config),
        search_lib.DEVICE_KEY: {"target": config.target_device, "boards_dirs": list(config.boards_dirs),
                                "max_latency_ms": config.requirements.max_latency_ms},
        search_lib.SEARCH_KEY: {"max_epochs": s.max_epochs, "factor": s.factor, "iterations": s.iterations,
                                "time_budget_seconds": 60.0 * s.time_budget_minutes, "seed": s.seed,
                                "steps_per_epoch": s.steps_per_epoch},
    }


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Accuracy overall and per class, blessed above the floor and not worse than the baseline."""
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.requirements.min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.requirements.max_regression}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_default",
            label_key=config.family.label_key,
            preprocessing_function_names=["transform_features"])],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[config.family.raw_label_key])],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            # Thresholds on the overall slice only; per-class accuracy is reported, not gated.
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy", per_slice_thresholds=[
                tfma_config.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=accuracy_threshold)]),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        ])])


def training_stats_options():
    """TFDV's options for the training data's statistics: top-k and uniques from sketches.

    TFDV's default counts every distinct value of every string feature in a Beam combine keyed by
    value; a clip's bytes (``audio``) are distinct per example, so on the in-process DirectRunner the
    statistics held every clip in memory. Measured (StatisticsGen alone on the default data, peak RSS):
    1,836 MiB at 1x and 2,682 MiB at 3x by default; 1,073 and 1,085 MiB with the sketches. On that data
    the label, word and speaker top values, counts and unique counts are the same either way; values
    longer than 1 KiB are counted as one placeholder, and counts of values seen once (``source``) are
    the sketch's estimates.
    """
    import tensorflow_data_validation as tfdv

    return tfdv.StatsOptions(use_sketch_based_topk_uniques=True)


def create_pipeline(config: PipelineConfig, until: Optional[str] = None) -> tfx.dsl.Pipeline:
    """Builds the pipeline for ``config``.

    Args:
        config: a validated config whose run directories are set (``with_workdir``).
            ``metadata_path`` empty means the runner provides ML Metadata (Kubeflow).
        until: a node id: the pipeline ends there (``tinyml-tfx search`` stops after the ModelSearch).

    Returns:
        the family's ExampleGen -> StatisticsGen -> ImportSchemaGen (or SchemaGen) -> DataValidationGate ->
        Transform -> Trainer -> Evaluator (against the latest blessed model) and
        TFLiteQuantizer (int8 for TFLite Micro, with its own fidelity blessing) -> McuSizeGate
        (measured arena, flash and latency against the target board, with its own blessing)
        -> the family's streaming evaluator if it has one (keyword spotting: false accepts per hour and
        false rejects on continuous audio on TFLite Micro, with its own blessing) -> TestSetEvaluator
        (the held-out test split, once) and OtaPusher, inside ``tfx.dsl.Cond`` on all the blessings
        (the pusher checks them again).
    """
    data, family = config.data, config.family
    knobs = runtime_parameters(config)
    example_gen = family.example_gen(config)
    examples = example_gen.outputs["examples"]

    statistics_gen = tfx.components.StatisticsGen(
        examples=examples, stats_options=training_stats_options()).with_id(STATISTICS_GEN)
    if data.schema:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=data.schema).with_id(SCHEMA_GEN)
    else:
        schema_gen = tfx.components.SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True).with_id(INFERRED_SCHEMA_GEN)
    requirements = config.requirements
    validator = DataValidationGate(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        classes=data.labels, label_feature=family.raw_label_key,
        min_examples_per_class={TRAIN: requirements.min_train_examples_per_class,
                                EVAL: requirements.min_eval_examples_per_class,
                                TEST: requirements.min_eval_examples_per_class}).with_id(VALIDATOR)

    transform = Transform(
        examples=examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=family.preprocessing_fn,
        custom_config=transform_config(config),
        splits_config=tfx.proto.SplitsConfig(analyze=[TRAIN], transform=[TRAIN, EVAL, TEST]),
        # Transform's own pre/post-transform statistics are read by nothing here (the raw data's are
        # StatisticsGen's, checked by the DataValidationGate) and were what grew Transform's memory with
        # the data: 1,533 -> 2,016 MiB from 1x to 3x with them, 1,303 -> 1,367 without (pipeline/bench/SCALE.md).
        disable_statistics=True,
        compression=data.examples_compression,
    ).with_id(TRANSFORM)
    # Nothing is transformed, let alone trained, from data that failed validation.
    transform.add_upstream_node(validator)

    # The model's hyperparameters: the search's winner, or the repository's file (the TFX template's
    # pattern: an Importer of a HyperParameters artifact), or none (training.model).
    search_nodes: List[Any] = []
    hyperparameters = None
    if config.search.enabled:
        search = ModelSearch(
            examples=transform.outputs["transformed_examples"], transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"], tuner_fn=SEARCH_TUNER_FN,
            train_args=tfx.proto.TrainArgs(splits=[TRAIN]), eval_args=tfx.proto.EvalArgs(splits=[EVAL]),
            custom_config=search_config(config)).with_id(MODEL_SEARCH)
        search_nodes.append(search)
        hyperparameters = search.outputs["best_hyperparameters"]
    elif config.training.hyperparameters:
        importer = tfx.dsl.Importer(source_uri=config.training.hyperparameters,
                                    artifact_type=tfx.types.standard_artifacts.HyperParameters).with_id(
            HYPERPARAMETERS_IMPORTER)
        search_nodes.append(importer)
        hyperparameters = importer.outputs["result"]

    trainer = tfx.components.Trainer(
        run_fn=family.run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        train_args=knobs[TRAIN_ARGS_PARAMETER],
        eval_args=tfx.proto.EvalArgs(splits=[EVAL]),
        custom_config={**transform_config(config), "training": _training_config(config),
                       search_lib.SEARCH_MODULE_KEY: family.search_module,
                       search_lib.SETTINGS_KEY: model_settings(config)},
    ).with_id(TRAINER)

    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(BASELINE_RESOLVER)

    evaluator = tfx.components.Evaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=knobs[EVAL_CONFIG_PARAMETER],
        example_splits=[EVAL],
    ).with_id(EVALUATOR)

    quantizer = TFLiteQuantizer(
        model=trainer.outputs["model"],
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        labels=data.labels,
        mode=config.quantization.mode,
        calibration_examples=knobs[CALIBRATION_EXAMPLES_PARAMETER],
        max_accuracy_drop=knobs[MAX_QUANTIZATION_DROP_PARAMETER],
        signature=FEATURE_SIGNATURE,
        seed=config.training.seed,
    ).with_id(QUANTIZER)

    size_gate = McuSizeGate(
        quantized_model=quantizer.outputs["quantized_model"],
        target=knobs[TARGET_DEVICE_PARAMETER],
        extra_targets=config.extra_targets,
        boards_dirs=config.boards_dirs,
        max_latency_ms=config.requirements.max_latency_ms,
    ).with_id(SIZE_GATE)

    blessings = [evaluator.outputs["blessing"], quantizer.outputs["blessing"], size_gate.outputs["blessing"]]
    streaming = family.streaming_evaluator(config, quantizer.outputs["quantized_model"], size_gate.outputs["report"],
                                           knobs)
    if streaming is not None:
        streaming = streaming.with_id(STREAMING_EVALUATOR)
        blessings.append(streaming.outputs["blessing"])
    all_blessed = _blessed(blessings[0])
    for blessing in blessings[1:]:
        all_blessed = placeholder_base.logical_and(all_blessed, _blessed(blessing))
    with tfx.dsl.Cond(all_blessed):
        # Once every gate has passed, and never before a decision: the held-out test split.
        test_evaluator = TestSetEvaluator(
            model=trainer.outputs["model"], quantized_model=quantizer.outputs["quantized_model"],
            examples=transform.outputs["transformed_examples"], transform_graph=transform.outputs["transform_graph"],
            labels=data.labels, signature=FEATURE_SIGNATURE).with_id(TEST_EVALUATOR)
        pusher = OtaPusher(
            quantized_model=quantizer.outputs["quantized_model"], model_blessing=blessings[0],
            quantization_blessing=blessings[1], device_blessing=blessings[2],
            device_report=size_gate.outputs["report"], registry=config.release.registry or "",
            repository=config.repository, input_processing=family.input_processing(config),
            pipeline_name=config.pipeline_name, signing_key_file=config.release.signing_key_file,
            allow_unsigned=config.release.allow_unsigned, channel_name=config.release.channel,
            insecure=config.release.insecure,
            card=card_text(config), test_evaluation=test_evaluator.outputs["evaluation"],
            streaming_evaluation=streaming.outputs["evaluation"] if streaming else None,
            streaming_blessing=streaming.outputs["blessing"] if streaming else None,
        ).with_id(PUSHER)

    components: List[Any] = [example_gen, statistics_gen, schema_gen, validator, transform, *search_nodes,
                             trainer, baseline, evaluator, quantizer, size_gate,
                             *([streaming] if streaming else []), test_evaluator, pusher]
    if until:
        ids = [c.id for c in components]
        if until not in ids:
            raise ValueError(f"create_pipeline(until={until!r}): no such node; the nodes are {', '.join(ids)}.")
        components = components[:ids.index(until) + 1]
    metadata = (tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
                if config.metadata_path else None)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=True,
        metadata_connection_config=metadata,
        beam_pipeline_args=beam_pipeline_args(config),
    )


# Beam flags that tell TFX where remote workers get their Python code. With none of them,
# every Beam executor builds a source package of TFX itself (about 52 MB, in a temporary
# folder it never removes: tfx/utils/dependency_utils.py, make_beam_dependency_flags) to
# stage for the workers: seconds per component and a leak in /tmp for every run, useless for
# the in-process DirectRunner and wrong for this project's remote runners, whose workers run
# the pipeline image.
_BEAM_DEPENDENCY_FLAGS = ("--extra_package", "--extra_packages", "--setup_file", "--requirements_file",
                          "--sdk_container_image", "--worker_harness_container_image")


def beam_pipeline_args(config: PipelineConfig) -> List[str]:
    """The config's ``beam_args``, naming the pipeline image as the workers' environment unless they name one."""
    args = list(config.beam_args)
    if not any(arg.split("=", 1)[0] in _BEAM_DEPENDENCY_FLAGS for arg in args):
        args.append(f"--sdk_container_image={config.kubeflow.image}")
    return args


def _training_config(config: PipelineConfig) -> Dict[str, Any]:
    t = config.training
    return {"model": t.model, "width": t.width, "epochs": t.epochs, "batch_size": t.batch_size,
            "learning_rate": t.learning_rate, "seed": t.seed}
