"""The monitoring pipeline: the fleet's telemetry against the released model's reference telemetry.

``create_monitoring_pipeline`` is pure, like ``create_pipeline``: the local runner
(``tinyml-tfx monitor``), the Kubeflow compiler and the tests get the same graph:

    TelemetryExampleGen (field, latest span) -> StatisticsGen ---\\
                                                                  DriftDecision -> RetrainDecision
    TelemetryExampleGen (reference)          -> StatisticsGen ---/

The reference is telemetry too: the released model's summaries on its training distribution,
computed by the device's summary code (``components/telemetry``), so field and reference are
compared in the same representation (features of clips and features of an always-on device
differ in kind: a stream is mostly background). See components/drift_decision/README.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

from tfx import v1 as tfx
from tfx.proto import range_config_pb2

from components.drift_decision import drift
from components.drift_decision.component import DriftDecision
from components.telemetry import examples as examples_lib
from components.telemetry import records as records_lib
from components.telemetry_example_gen.component import SPLIT, TelemetryExampleGen
from pipeline.config import PipelineConfig
from pipeline.pipeline import beam_pipeline_args

FIELD_EXAMPLE_GEN = "FieldTelemetryGen"
REFERENCE_EXAMPLE_GEN = "ReferenceTelemetryGen"
FIELD_STATISTICS = "FieldStatisticsGen"
REFERENCE_STATISTICS = "ReferenceStatisticsGen"
DRIFT_DECISION = "DriftDecision"
FIELD_DATASET = "field"
REFERENCE_DATASET = "reference"
NAME_SUFFIX = "-monitoring"


def telemetry_root(config: PipelineConfig) -> str:
    """Where the telemetry datasets live: ``monitoring.telemetry_root`` or WORKDIR/telemetry/<pipeline_name>."""
    if config.monitoring.telemetry_root:
        return config.monitoring.telemetry_root
    if not config.workdir:
        raise ValueError("monitoring.telemetry_root is not set and the config has no work directory.")
    return os.path.join(config.workdir, "telemetry", config.pipeline_name)


def dataset_dir(config: PipelineConfig, dataset: str) -> str:
    return os.path.join(telemetry_root(config), dataset)


def expectations(config: PipelineConfig) -> records_lib.Expectations:
    """What telemetry of this config's model must agree with: its classes, its family's channels, its boards."""
    return records_lib.Expectations(
        labels=tuple(config.data.labels), channels=tuple(config.family.telemetry_channels(config)),
        device_classes=tuple(dict.fromkeys((config.target_device, *config.extra_targets))))


def thresholds(config: PipelineConfig) -> drift.Thresholds:
    m = config.monitoring
    return drift.Thresholds(class_distance=m.max_class_distance, score_distance=m.max_score_distance,
                            feature_divergence=m.max_feature_divergence, min_summaries=m.min_summaries)


def monitoring_name(config: PipelineConfig) -> str:
    return config.pipeline_name + NAME_SUFFIX


def monitoring_config(config: PipelineConfig) -> PipelineConfig:
    """``config`` with the monitoring pipeline's own root and ML Metadata beside the training pipeline's."""
    name = monitoring_name(config)
    root = os.path.join(os.path.dirname(config.pipeline_root.rstrip("/")), name) if config.pipeline_root else ""
    metadata = (os.path.join(os.path.dirname(config.metadata_path), f"{name}.sqlite")
                if config.metadata_path else "")
    return dataclasses.replace(config, pipeline_root=root, metadata_path=metadata)


def create_monitoring_pipeline(config: PipelineConfig, span: Optional[int] = None) -> tfx.dsl.Pipeline:
    """Builds the monitoring pipeline for ``config``.

    Args:
        config: a validated config with run directories (``with_workdir``) or ``monitoring.telemetry_root``.
            Its ``pipeline_root`` and ``metadata_path`` are the training pipeline's; the monitoring
            pipeline keeps its own beside them (``monitoring_config``).
        span: the field span to judge; None: the latest (TFX's driver resolves it).

    Returns:
        Field and reference TelemetryExampleGen -> StatisticsGen each -> DriftDecision.
    """
    mon = monitoring_config(config)
    range_config = (range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
        start_span_number=span, end_span_number=span)) if span is not None else None)
    field = TelemetryExampleGen(input_base=dataset_dir(config, FIELD_DATASET),
                                range_config=range_config).with_id(FIELD_EXAMPLE_GEN)
    reference = TelemetryExampleGen(input_base=dataset_dir(config, REFERENCE_DATASET)).with_id(REFERENCE_EXAMPLE_GEN)
    field_stats = tfx.components.StatisticsGen(examples=field.outputs["examples"]).with_id(FIELD_STATISTICS)
    reference_stats = tfx.components.StatisticsGen(examples=reference.outputs["examples"]).with_id(REFERENCE_STATISTICS)
    decision = DriftDecision(
        statistics=field_stats.outputs["statistics"], reference_statistics=reference_stats.outputs["statistics"],
        split=SPLIT, class_feature=examples_lib.TOP_CLASS, score_feature=examples_lib.TOP_SCORE_BIN,
        numeric_features=examples_lib.numeric_features(config.family.telemetry_channels(config)),
        thresholds=thresholds(config), examples=field.outputs["examples"]).with_id(DRIFT_DECISION)
    metadata = (tfx.orchestration.metadata.sqlite_metadata_connection_config(mon.metadata_path)
                if mon.metadata_path else None)
    return tfx.dsl.Pipeline(
        pipeline_name=monitoring_name(config), pipeline_root=mon.pipeline_root,
        components=[field, reference, field_stats, reference_stats, decision],
        enable_cache=True, metadata_connection_config=metadata, beam_pipeline_args=beam_pipeline_args(config))


def run(config: PipelineConfig, span: Optional[int] = None) -> Dict[str, Any]:
    """Runs the monitoring pipeline with LocalDagRunner; returns the decision (``decision.json``, plus
    the artifact's ``uri``) read back from ML Metadata."""
    mon = monitoring_config(config)
    os.makedirs(os.path.dirname(mon.metadata_path), exist_ok=True)
    tfx.orchestration.LocalDagRunner().run(create_monitoring_pipeline(config, span))
    return latest_decision(config)


def decisions(config: PipelineConfig) -> List[Dict[str, Any]]:
    """Every RetrainDecision in the monitoring pipeline's ML Metadata, oldest first (each its ``decision.json``
    with ``uri``)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from components.drift_decision.executor import DECISION_FILE
    from components.types import RetrainDecision

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = monitoring_config(config).metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    if not os.path.exists(connection.sqlite.filename_uri):
        return []
    store = metadata_store.MetadataStore(connection)
    out = []
    for artifact in sorted(store.get_artifacts_by_type(RetrainDecision.TYPE_NAME),
                           key=lambda a: (a.create_time_since_epoch, a.id)):
        with open(os.path.join(artifact.uri, DECISION_FILE), encoding="utf-8") as f:
            out.append({**json.load(f), "uri": artifact.uri})
    return out


def latest_decision(config: PipelineConfig) -> Dict[str, Any]:
    """The newest RetrainDecision in the monitoring pipeline's ML Metadata (its ``decision.json`` and ``uri``)."""
    found = decisions(config)
    if not found:
        raise LookupError(f"No monitoring decision in {monitoring_config(config).metadata_path}.")
    return found[-1]


def compile_monitoring_pipeline(config: PipelineConfig, output_file: str) -> Dict[str, Any]:
    """Compiles the monitoring pipeline into a KFP package at ``output_file`` (YAML).

    Args:
        config: a config prepared with ``for_kubeflow()`` whose ``monitoring.telemetry_root`` is where
            the pods read the telemetry datasets.

    Raises:
        ValueError: when ``monitoring.telemetry_root`` is not set (the pods cannot read this machine's disk).
    """
    from pipeline.runners import kubeflow as run_kubeflow

    if not config.monitoring.telemetry_root:
        raise ValueError(f"Config file {config.source}: field 'monitoring.telemetry_root' is not set; a Kubeflow "
                         "monitoring run reads the telemetry from where the pods can reach it. Set it to that "
                         "location (e.g. gs://bucket/telemetry/kws), where `tinyml-tfx telemetry ingest` writes.")
    spec = run_kubeflow.pipeline_spec(create_monitoring_pipeline(config), monitoring_name(config),
                                      config.kubeflow.image)
    return run_kubeflow.write_package(spec, {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {}}}}},
                                      output_file)
