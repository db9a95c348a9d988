"""Runs the pipeline, or only its data stages, on LocalDagRunner with a training budget and Beam options.

The benchmarks and the runner tests need what ``pipeline.runners.local.run`` does with
two knobs it does not take: a step budget for the Trainer (the ``train_steps`` run
parameter a Kubeflow run takes) and running only the data stages (ExampleGen,
StatisticsGen, the schema, the validation gate and Transform; the other nodes are marked
skipped in the compiled pipeline, which LocalDagRunner honours). Beam options are the
config's ``beam_args``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Iterable, Optional, Sequence

from pipeline import pipeline as tinyml_pipeline
from pipeline.config import PipelineConfig
from pipeline.runners import local as run_local
from pipeline.runners import workdir


def data_stage_ids(config: PipelineConfig) -> Sequence[str]:
    """The node ids of the data stages, in pipeline order."""
    schema = tinyml_pipeline.SCHEMA_GEN if config.data.schema else tinyml_pipeline.INFERRED_SCHEMA_GEN
    return (config.family.example_gen_id, tinyml_pipeline.STATISTICS_GEN, schema, tinyml_pipeline.VALIDATOR,
            tinyml_pipeline.TRANSFORM)


def with_beam_args(config: PipelineConfig, beam_args: Iterable[str]) -> PipelineConfig:
    """``config`` with other Beam options."""
    return dataclasses.replace(config, beam_args=tuple(beam_args))


def run(config: PipelineConfig, *, train_steps: Optional[int] = None, only: Optional[Sequence[str]] = None,
        run_id: Optional[str] = None) -> run_local.RunSummary:
    """Runs ``config``'s pipeline on LocalDagRunner and returns the run's summary from ML Metadata.

    Args:
        config: the config, with its work directory set; its ``beam_args`` go to every Beam component.
        train_steps: caps the Trainer at this many optimizer steps (TrainArgs.num_steps).
        only: node ids to run; every other node is skipped (e.g. ``data_stage_ids(config)``).
        run_id: the run's id (default: a new one).

    Raises:
        workdir.WorkdirBusy: when another run holds the work directory.
        ValueError: when ``only`` names a node the pipeline does not have.
    """
    from google.protobuf import json_format
    from tfx import v1 as tfx

    run_local.preflight(config)
    run_id = run_id or workdir.new_run_id()
    with contextlib.ExitStack() as stack:
        stack.enter_context(workdir.WorkdirLock(config.workdir, run_id))
        run_local.ensure_dev_signing_key(config)
        os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
        parameters = {}
        if train_steps is not None:
            default = json_format.MessageToJson(tinyml_pipeline.train_args(config))
            parameters[tinyml_pipeline.TRAIN_ARGS_PARAMETER] = tinyml_pipeline.with_train_steps(default, train_steps)
        pipeline_ir = run_local.compile_for_run(config, run_id, parameters=parameters)
        if only is not None:
            _skip_all_but(pipeline_ir, set(only))
        start = time.time()
        tfx.orchestration.LocalDagRunner().run_with_ir(pipeline_ir)
        return run_local.summarise(config, time.time() - start, run_id=run_id)


def _skip_all_but(pipeline_ir, keep: set) -> None:
    present = {node.pipeline_node.node_info.id for node in pipeline_ir.nodes}
    unknown = sorted(keep - present)
    if unknown:
        raise ValueError(f"The pipeline has no node {', '.join(unknown)}; its nodes are {', '.join(sorted(present))}.")
    for node in pipeline_ir.nodes:
        if node.pipeline_node.node_info.id not in keep:
            node.pipeline_node.execution_options.skip.SetInParent()
