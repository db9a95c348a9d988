"""One step of the scale benchmark in a child process, measured from the parent.

``measure(step, ...)`` starts ``python -m pipeline.bench.measured`` for one step
(``generate`` the dataset, run the ``pipeline``, or only its data ``stages``), samples
the child's whole process tree (``proctree.TreeSampler``) until it ends, and returns the
child's result with the samples. The child writes its result as JSON; its log goes to a
file so that the benchmark's console stays readable. A guard (disk or memory running
low) stops the child: the step then reports why instead of a result.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import psutil

from pipeline import config as config_lib
from pipeline.bench import proctree

STEPS = ("generate", "pipeline", "stages")


@dataclasses.dataclass(frozen=True)
class ScaleSettings:
    """How a benchmark config differs from the config it starts from."""

    factor: int                      # data.synthetic.speakers is multiplied by this
    workdir: str
    epochs: Optional[int] = None     # training.epochs (None: the config's)
    beam_args: Optional[Sequence[str]] = None   # None: the config's
    data_root: Optional[str] = None  # an existing dataset (None: the synthetic one in workdir)


def scaled_config(config: config_lib.PipelineConfig, settings: ScaleSettings) -> config_lib.PipelineConfig:
    """``config`` with ``settings.factor`` times the synthetic speakers, run under ``settings.workdir``.

    Raises:
        config_lib.ConfigError: when the config's data is not generated, or its family's
            generated dataset does not grow with ``data.synthetic.speakers``.
    """
    if config.data.root is not None and settings.data_root is None:
        raise config_lib.ConfigError(
            f"Config file {config.source}: data.root is set, so there is no synthetic dataset to scale. The scale "
            "benchmark grows the generated data (data.synthetic.speakers); use a config with data.root: null.")
    synthetic = dataclasses.replace(config.data.synthetic, speakers=config.data.synthetic.speakers * settings.factor)
    scaled = dataclasses.replace(config, data=dataclasses.replace(config.data, synthetic=synthetic,
                                                                  root=settings.data_root))
    if settings.factor != 1 and config.family.generation_spec(scaled) == config.family.generation_spec(config):
        raise config_lib.ConfigError(
            f"Config file {config.source}: the '{config.family.name}' family's generated dataset does not grow with "
            "data.synthetic.speakers, which is what the scale benchmark multiplies.")
    if settings.epochs is not None:
        scaled = dataclasses.replace(scaled, training=dataclasses.replace(scaled.training, epochs=settings.epochs))
    if settings.beam_args is not None:
        scaled = dataclasses.replace(scaled, beam_args=tuple(settings.beam_args))
    return scaled.with_workdir(settings.workdir)


@dataclasses.dataclass
class Measured:
    """A step's result (what the child wrote), the tree's samples, and why it was stopped, if it was."""

    result: Dict[str, Any]
    samples: List[proctree.Sample]
    stop_reason: Optional[str]
    exit_code: Optional[int]
    log_path: str
    start: float
    end: float


def _end_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        tree = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=20)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def measure(step: str, config_path: str, settings: ScaleSettings, out_dir: str, *, train_steps: Optional[int] = None,
            guard: Optional[Callable[[], Optional[str]]] = None, interval: float = 0.25,
            run_id: Optional[str] = None) -> Measured:
    """Runs one step in a child process and samples its process tree until it ends.

    Args:
        step: ``generate``, ``pipeline`` or ``stages``.
        config_path: the config file the benchmark starts from.
        settings: how the step's config differs from it.
        out_dir: where the step's result (``<step>.json``) and log (``<step>.log``) go.
        train_steps: the Trainer's step budget (``pipeline`` only).
        guard: see ``proctree.TreeSampler``; when it fires, the child's whole tree is ended.
        interval: seconds between samples.
        run_id: the pipeline run's id (``pipeline`` and ``stages``; default: a new one), so that a
            caller can read the components that ended from ML Metadata when the step is stopped.
    """
    if step not in STEPS:
        raise ValueError(f"Unknown step {step!r}; the steps are {', '.join(STEPS)}.")
    os.makedirs(out_dir, exist_ok=True)
    result_path, log_path = os.path.join(out_dir, f"{step}.json"), os.path.join(out_dir, f"{step}.log")
    if os.path.exists(result_path):
        os.remove(result_path)
    command = [sys.executable, "-m", "pipeline.bench.measured", step, "--config", config_path,
               "--settings", json.dumps(dataclasses.asdict(settings)), "--result", result_path]
    if train_steps is not None:
        command += ["--train-steps", str(train_steps)]
    if run_id is not None:
        command += ["--run-id", run_id]
    start = time.time()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        with proctree.TreeSampler(child.pid, interval=interval, guard=guard) as sampler:
            while child.poll() is None and not sampler.stopped:
                time.sleep(interval)
        if sampler.stopped:
            _end_tree(child.pid)
        exit_code = child.wait()
    end = time.time()
    result: Dict[str, Any] = {}
    if os.path.exists(result_path):
        with open(result_path) as f:
            result = json.load(f)
    return Measured(result, sampler.samples, sampler.stop_reason, exit_code, log_path, start, end)


# ----------------------------------------------------------------------------- the child


def component_windows(config: config_lib.PipelineConfig, run_id: str) -> Dict[str, Dict[str, Any]]:
    """Each component of the run: state, start and end (epoch seconds, from ML Metadata); {} when ML
    Metadata has no such run."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.runners import local as run_local

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(connection)
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    if run is None:
        return {}
    states = run_local.run_states(config, run_id)
    windows = {}
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        node = run_local.node_id_of(store, execution)
        windows[node] = {"state": states.get(node, "?"), "start": execution.create_time_since_epoch / 1000,
                         "end": execution.last_update_time_since_epoch / 1000}
    return windows


def _examples_ingested(summary) -> Optional[int]:
    if not summary.ingestion_report:
        return None
    with open(summary.ingestion_report) as f:
        report = json.load(f)
    return sum(n for split in report["examples"].values() for n in split.values())


def trainer_fit(summary) -> Optional[Dict[str, float]]:
    """The Trainer's ``model.fit``: wall and CPU seconds and the cores it kept busy (None if it did not train)."""
    from pipeline import pipeline as tinyml_pipeline
    from pipeline.tasks.common import training

    model_run = summary.artifact_uris.get(tinyml_pipeline.TRAINER, {}).get("model_run")
    path = os.path.join(model_run, training.HISTORY_FILE) if model_run else None
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        history = json.load(f)
    seconds, cpu_seconds = history.get(training.FIT_SECONDS), history.get(training.FIT_CPU_SECONDS)
    if not seconds or cpu_seconds is None:
        return None
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "cores": cpu_seconds / seconds,
            "steps": history.get(training.OPTIMIZER_STEPS)}


def _child(step: str, config: config_lib.PipelineConfig, train_steps: Optional[int],
           run_id: Optional[str] = None) -> Dict[str, Any]:
    from pipeline.bench import outputs, stages
    from pipeline.runners import local as run_local

    if step == "generate":
        start = time.time()
        run_local.prepare_data(config, force=True)
        with open(os.path.join(config.data_root, "DATASET.json")) as f:
            manifest = json.load(f)
        return {"seconds": time.time() - start, "clips": manifest.get("clips"),
                "speakers_requested": config.data.synthetic.speakers, "speakers_distinct": len(manifest["speakers"])}
    only = stages.data_stage_ids(config) if step == "stages" else None
    summary = stages.run(config, train_steps=train_steps, only=only, run_id=run_id)
    result: Dict[str, Any] = {
        "run_id": summary.run_id, "wall_seconds": summary.wall_seconds,
        "components": component_windows(config, summary.run_id), "artifact_uris": summary.artifact_uris,
        "examples": _examples_ingested(summary), "eval_accuracy": summary.eval_accuracy,
        "trainer_fit": trainer_fit(summary), "beam_args": list(config.beam_args)}
    if step == "stages":
        from components.audio_example_gen.layout import SPLITS

        digests = outputs.data_stage_digests(summary.artifact_uris, config.family.example_gen_id, list(SPLITS))
        result["digests"] = json.loads(json.dumps(digests, default=dataclasses.asdict))
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="One measured step of the scale benchmark (run by it, not by hand).")
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--config", required=True)
    parser.add_argument("--settings", required=True, help="ScaleSettings as JSON")
    parser.add_argument("--result", required=True)
    parser.add_argument("--train-steps", type=int)
    parser.add_argument("--run-id")
    args = parser.parse_args(argv)
    settings = ScaleSettings(**json.loads(args.settings))
    config = scaled_config(config_lib.load_config(args.config), settings)
    result = _child(args.step, config, args.train_steps, args.run_id)
    with open(args.result + ".partial", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(args.result + ".partial", args.result)


if __name__ == "__main__":
    main()
