"""The StreamingEvaluator in the pipeline: it runs after the size gate, its blessing gates the release, and the
release carries postprocessing.h, its settings and figures (annotations, model card)."""

import hashlib
import json
import os

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.streaming_evaluator import postprocessing, release as streaming_release
from pipeline import pipeline as tinyml_pipeline
from tests.helpers import TINY_STREAM_MINUTES
from tests.unit.test_postprocessing_header import compiled_values


def _states(summary):
    return {c.node_id: c.state for c in summary.components}


def _report(summary):
    with open(os.path.join(summary.streaming["uri"], postprocessing.REPORT_FILE)) as f:
        return json.load(f)


def test_the_streaming_evaluator_runs_once_and_is_recorded(tiny_pipeline_runs):
    config, (first, _, third) = tiny_pipeline_runs
    assert _states(first)[tinyml_pipeline.STREAMING_EVALUATOR] == "done"
    assert _states(third)[tinyml_pipeline.STREAMING_EVALUATOR] == "cached"
    report = _report(first)
    assert report["composition"]["audio_seconds"] == TINY_STREAM_MINUTES * 60
    assert report["composition"]["synthetic"] and report["composition"]["speakers_source"] == (
        "the synthetic dataset's test split")
    # The stride is the target's estimated time per inference, rounded up to whole 20 ms slices.
    latency = report["settings"]["target_latency_ms"]
    assert report["settings"]["inference_stride_ms"] == 20 * -(-latency // 20)
    assert first.streaming["detection_threshold"] == report["operating_point"]["threshold"]
    assert first.streaming["blessed"] == report["blessed"] is True    # the tiny config only reports the FRR
    assert "Streaming:      0.2 min of audio on TFLite Micro" in first.to_text()
    labels_files = os.listdir(os.path.join(first.streaming["uri"], "streams"))
    assert labels_files == [f"{s['name']}.labels.txt" for s in report["streams"]]


def test_the_release_carries_postprocessing_h_that_compiles_and_holds_the_chosen_settings(tiny_pipeline_runs,
                                                                                         tmp_path):
    from components.ota import oci_layout, releases

    config, (first, _, _) = tiny_pipeline_runs
    store = oci_layout.OciLayout(os.path.join(config.release.registry, config.repository))
    public_key = open(config.release.signing_key_file + ".pub", "rb").read()
    files = releases.pull_release(store, "0.1.0", config.repository, public_key)
    report = _report(first)
    header = files[postprocessing.HEADER_FILE]
    with open(os.path.join(first.streaming["uri"], postprocessing.HEADER_FILE), "rb") as f:
        assert header == f.read()
    assert json.loads(files[postprocessing.REPORT_FILE]) == report
    values = compiled_values(header.decode(), tmp_path)
    assert values["kDetectionThreshold"] == report["operating_point"]["threshold"]
    assert values["kInferenceStrideMs"] == report["settings"]["inference_stride_ms"]
    assert values == postprocessing.settings_of(report)

    annotations = store.get_manifest(store.resolve("0.1.0")["digest"])["annotations"]
    assert annotations[streaming_release.POSTPROCESSING_SHA256_ANNOTATION] == hashlib.sha256(header).hexdigest()
    assert int(annotations[streaming_release.THRESHOLD_ANNOTATION]) == values["kDetectionThreshold"]
    assert int(annotations[streaming_release.STRIDE_ANNOTATION]) == values["kInferenceStrideMs"]
    assert float(annotations[streaming_release.FALSE_REJECT_ANNOTATION]) == round(
        report["operating_point"]["false_reject_rate"], 4)
    ids = json.loads(annotations[streaming_release.LINEAGE_ANNOTATION])
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    mlmd = metadata_store.MetadataStore(connection)
    assert mlmd.get_artifacts_by_id([ids["streaming_evaluation"]])[0].uri == first.streaming["uri"]
    assert mlmd.get_artifacts_by_id([ids["streaming_blessing"]])[0].uri == first.artifact_uris[
        tinyml_pipeline.STREAMING_EVALUATOR]["blessing"]
    card = files["model_card.md"].decode()
    assert card.index("## Streaming (continuous audio, TFLite Micro)") < card.index("## Limitations")
    assert f"false-reject rate: {report['operating_point']['false_reject_rate']:.3f}" in card
    assert "SYNTHETIC audio" in card


def test_the_run_report_has_the_streaming_section(tiny_pipeline_runs):
    from pipeline.ui import report as report_lib

    config, (first, _, _) = tiny_pipeline_runs
    content = report_lib.build_report(first, config)
    section = content["streaming"]
    assert section["det_plot"].startswith("data:image/png;base64,")
    assert section["timeline_plot"].startswith("data:image/png;base64,")
    assert [row[0] for row in section["per_keyword"]] == list(config.data.words)
    html = report_lib.render_html(content)
    assert "<h2 id='streaming'>Streaming</h2>" in html and "postprocessing.h" in html
    assert "## Streaming (continuous audio, TFLite Micro)" in report_lib.model_card_markdown(first, config, content)


def test_a_streaming_refusal_blocks_the_release_in_the_run_and_by_hand(tiny_pipeline_runs, tmp_path):
    import dataclasses

    from click.testing import CliRunner

    from pipeline.runners import local as run_local
    from pipeline.ui import cli, report as report_lib
    from tests.helpers import write_config_yaml

    config, _ = tiny_pipeline_runs
    strict = dataclasses.replace(config, requirements=dataclasses.replace(config.requirements,
                                                                          max_false_reject_rate=0.0))
    summary = run_local.run(strict)
    states = _states(summary)
    assert states[tinyml_pipeline.STREAMING_EVALUATOR] == "done" and states[tinyml_pipeline.QUANTIZER] == "cached"
    assert not summary.streaming["blessed"] and tinyml_pipeline.PUSHER not in states and not summary.release
    point = _report(summary)["operating_point"]
    assert summary.streaming["reason"].startswith(
        f"no detection threshold meets both requirements: within 1 false accepts per hour the lowest false-reject "
        f"rate is {point['false_reject_rate']:.3f} (threshold {point['threshold']}), "
        f"{point['false_reject_rate']:.3f} above max_false_reject_rate 0")
    assert report_lib.release_outcome(summary, strict)["reasons"] == [
        f"The StreamingEvaluator refused it: {summary.streaming['reason']}"]
    pushed = CliRunner().invoke(cli.main, [
        "push", "--config", write_config_yaml(strict, str(tmp_path / "strict.yaml")), "--workdir",
        os.path.dirname(config.release.registry), "--registry", str(tmp_path / "fresh"), "--run", summary.run_id])
    assert pushed.exit_code == 1 and "not blessed by StreamingEvaluator" in pushed.output
