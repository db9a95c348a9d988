"""The monitoring pipeline end to end through the CLI: reference and field telemetry ingested as spans,
LocalDagRunner with ML Metadata, TFDV's drift comparators; and its Kubeflow package."""

from __future__ import annotations

import dataclasses
import json
import os
import re

import pytest
import yaml
from click.testing import CliRunner

from pipeline import config as config_lib, monitoring
from pipeline.ui.cli import main
from tests.support.telemetry import device_records, ingest_batch, write_batch


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """A work directory with reference telemetry (3 periods of 40 devices) and two field spans: a period like
    the reference, then one whose upper filterbank channels moved (a new noise)."""
    tmp = tmp_path_factory.mktemp("monitoring")
    work = str(tmp / "work")
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(work)
    expect = monitoring.expectations(config)
    runner = CliRunner()

    def ingest(name, records, *flags):
        return ingest_batch(str(tmp / name), records, work, *flags)

    reference = [r for p in range(3) for r in device_records(expect.labels, expect.channels, 40, p, seed=11)]
    ingest("reference", reference, "--reference")
    ingest("day3", device_records(expect.labels, expect.channels, 30, 3, seed=11))
    calm = runner.invoke(main, ["monitor", "--workdir", work, "--retrain-exit-code", "10"])
    shifted = device_records(expect.labels, expect.channels, 30, 4, seed=11, shift=15.0, silence_share=0.4)
    for record in shifted[:5]:
        record["model_version"] = "0.2.0"      # a few devices already on a newer release
    ingest("day4", shifted)
    drifted = runner.invoke(main, ["monitor", "--workdir", work, "--retrain-exit-code", "10"])
    return config, calm, drifted


def test_no_shift_no_retrain(monitored):
    config, calm, _ = monitored
    assert calm.exit_code == 0, calm.output
    assert "field span 1: no retrain: no drift" in calm.output


def test_a_shift_blesses_a_retrain_naming_the_drifting_features(monitored):
    config, _, drifted = monitored
    assert drifted.exit_code == 10, drifted.output      # --retrain-exit-code: the scheduler submits a training run
    assert "field span 2: RETRAIN: drift in" in drifted.output
    assert "Warning: the field span holds model version(s) 0.2.0 that the reference telemetry does not" in \
        " ".join(drifted.output.split())
    decision = monitoring.latest_decision(config)
    assert decision["retrain"] and decision["field_span"] == 2
    assert decision["field_model_versions"] == ["0.1.0", "0.2.0"] and decision["reference_model_versions"] == ["0.1.0"]
    channels = config.family.telemetry_channels(config)
    upper = {f"mean_{c}" for c in channels[len(channels) // 2:]}
    lower = {f"mean_{c}" for c in channels[:len(channels) // 4]}
    drifting = set(decision["drifting_features"])
    assert drifting & upper and not drifting & lower          # the channels that moved, not the others
    assert "top_class" in drifting                            # the class shares moved too (L-infinity)
    measured = {m["feature"]: m for m in decision["measurements"]}
    assert measured["top_class"]["comparator"] == "L-infinity"
    assert measured[f"mean_{channels[-1]}"]["comparator"] == "Jensen-Shannon divergence"
    with open(os.path.join(decision["uri"], "decision.json")) as f:
        assert json.load(f)["drifting_features"] == decision["drifting_features"]


def test_monitor_without_telemetry_is_one_paragraph(tmp_path):
    out = CliRunner().invoke(main, ["monitor", "--workdir", str(tmp_path)])
    assert out.exit_code == 2 and "No field telemetry at" in out.output and "Traceback" not in out.output


def test_the_monitoring_pipeline_compiles_for_kubeflow(tmp_path):
    from kfp.pipeline_spec import pipeline_spec_pb2
    from google.protobuf import json_format
    from tfx.utils import import_utils

    base = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    config = dataclasses.replace(
        base, data=dataclasses.replace(base.data, root="gs://data/kws"),
        kubeflow=config_lib.KubeflowConfig(image="registry.example/tinyml-tfx:1.0", pipeline_root="gs://runs"),
        monitoring=config_lib.MonitoringConfig(telemetry_root="gs://telemetry/kws")).for_kubeflow()
    path = str(tmp_path / "monitoring.yaml")
    monitoring.compile_monitoring_pipeline(config, path)
    with open(path) as f:
        spec_dict, _ = yaml.safe_load_all(f)
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(spec_dict, spec)
    assert spec.pipeline_info.name == "kws-monitoring"
    assert set(spec.root.dag.tasks) == {monitoring.FIELD_EXAMPLE_GEN, monitoring.REFERENCE_EXAMPLE_GEN,
                                        monitoring.FIELD_STATISTICS, monitoring.REFERENCE_STATISTICS,
                                        monitoring.DRIFT_DECISION}
    text = json.dumps(spec_dict)
    assert "gs://telemetry/kws/field" in text and "gs://telemetry/kws/reference" in text
    # the custom type resolves by name, as the container entrypoint resolves it
    assert import_utils.import_class_by_path("components.RetrainDecision").TYPE_NAME == "components.RetrainDecision"
    with pytest.raises(ValueError, match="monitoring.telemetry_root"):
        monitoring.compile_monitoring_pipeline(dataclasses.replace(config, monitoring=config_lib.MonitoringConfig()),
                                               path)


def test_the_monitoring_report_renders_offline_in_headless_chromium(monitored, tmp_path):
    from tests.e2e.test_report_in_browser import _render

    config, _, drifted = monitored
    page = os.path.join(config.workdir, "reports", "monitoring", "monitoring.html")
    assert f"Report:   {page}" in drifted.output
    html = open(page, encoding="utf-8").read()
    assert html.count("RETRAIN") == 1 and "<td>2</td><td>RETRAIN</td>" in html and "<td>1</td><td>no</td>" in html
    assert "mean_filterbank_" in html and "0.1.0" in html     # drifting features named; detections per version
    # detections per version: the test devices confirm all their detections (share 1.00)
    assert "share of detections confirmed" in html
    assert re.search(r"<td>0\.1\.0</td><td>\d+</td><td>\d+</td><td>[\d.]+</td><td>[\d.]+</td><td>1\.00</td>", html)
    image, page_urls = _render(page, tmp_path)
    assert image.shape == (3000, 1200) and image.std() > 20
    assert not [u for u in page_urls if u.startswith(("http:", "https:"))], page_urls


def test_the_compiled_monitoring_package_runs_through_the_container_entrypoint(tmp_path):
    """Every task of the monitoring package as KFP runs it in pods (pipeline/runners/kfp_launcher.py): TFX's
    v2 container entrypoint, and for the field ExampleGen TFX's span driver (its lifecycle hook) first,
    which must pick the newest field span. Telemetry: a reference and two field spans, the newest shifted."""
    from components.telemetry import ingest
    from pipeline.runners import kfp_launcher

    base = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    telemetry = str(tmp_path / "telemetry")
    config = dataclasses.replace(
        base, data=dataclasses.replace(base.data, root=str(tmp_path / "data")),
        kubeflow=config_lib.KubeflowConfig(image="tinyml-tfx:test", pipeline_root=str(tmp_path / "root")),
        monitoring=config_lib.MonitoringConfig(telemetry_root=telemetry)).for_kubeflow()
    expect = monitoring.expectations(config)
    reference = [r for p in range(3) for r in device_records(expect.labels, expect.channels, 40, p, seed=11)]
    ingest.ingest(write_batch(str(tmp_path / "reference"), reference),
                  monitoring.dataset_dir(config, monitoring.REFERENCE_DATASET), expect)
    for day, shift in ((3, 0.0), (4, 15.0)):
        records = device_records(expect.labels, expect.channels, 30, day, seed=11, shift=shift)
        ingest.ingest(write_batch(str(tmp_path / f"day{day}"), records),
                      monitoring.dataset_dir(config, monitoring.FIELD_DATASET), expect)
    package = str(tmp_path / "monitoring.yaml")
    monitoring.compile_monitoring_pipeline(config, package)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYML_TFX_")}
    runs = kfp_launcher.run_package(package, str(tmp_path / "root"), env=env)
    assert {name: run.state for name, run in runs.items()} == {name: "succeeded" for name in runs}
    field = runs[monitoring.FIELD_EXAMPLE_GEN].outputs["examples"][0]
    assert int(field["metadata"]["custom:span"]) == 2    # the driver resolved {SPAN} to the newest field span
    decision = runs[monitoring.DRIFT_DECISION].outputs["decision"][0]["metadata"]
    assert int(decision["retrain"]) == 1 and decision["drifting_features"]
