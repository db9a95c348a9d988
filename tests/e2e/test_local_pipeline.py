"""The whole pipeline on LocalDagRunner with a tiny generated dataset, checked through ML Metadata."""

import dataclasses
import json
import os

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import pipeline as tinyml_pipeline
from pipeline.runners import local as run_local
from tests.helpers import AUDIO_EXAMPLE_GEN, write_tiny_board

CHANCE = 1 / 5  # silence, unknown, yes, no, up
PRODUCING_NODES = [AUDIO_EXAMPLE_GEN, tinyml_pipeline.STATISTICS_GEN, tinyml_pipeline.SCHEMA_GEN,
                   tinyml_pipeline.VALIDATOR, tinyml_pipeline.TRANSFORM, tinyml_pipeline.TRAINER, tinyml_pipeline.EVALUATOR,
                   tinyml_pipeline.QUANTIZER, tinyml_pipeline.SIZE_GATE]
EXPECTED_OUTPUTS = {
    AUDIO_EXAMPLE_GEN: {"examples"},
    tinyml_pipeline.STATISTICS_GEN: {"statistics"},
    tinyml_pipeline.SCHEMA_GEN: {"schema"},
    tinyml_pipeline.VALIDATOR: {"anomalies"},
    tinyml_pipeline.TRANSFORM: {"transform_graph", "transformed_examples"},
    tinyml_pipeline.TRAINER: {"model", "model_run"},
    tinyml_pipeline.EVALUATOR: {"evaluation", "blessing"},
    tinyml_pipeline.QUANTIZER: {"quantized_model", "blessing"},
    tinyml_pipeline.SIZE_GATE: {"blessing", "report"},
}


@pytest.fixture(scope="module")
def runs(tiny_pipeline_runs):
    return tiny_pipeline_runs


def _store(config):
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    return metadata_store.MetadataStore(connection)


def _by_node(summary):
    return {c.node_id: c for c in summary.components}


def test_first_run_executes_every_component(runs):
    _, (first, _, _) = runs
    states = {node: c.state for node, c in _by_node(first).items()}
    assert all(states[node] == "done" for node in PRODUCING_NODES), states


def test_ml_metadata_records_executions_and_artifacts_per_component(runs):
    config, (first, _, _) = runs
    store = _store(config)
    run_ctx = store.get_context_by_type_and_name("pipeline_run", first.run_id)
    executions = store.get_executions_by_context(run_ctx.id)
    by_node = {run_local.node_id_of(store, e): e for e in executions}
    assert set(PRODUCING_NODES) <= set(by_node)
    for node, outputs in EXPECTED_OUTPUTS.items():
        events = store.get_events_by_execution_ids([by_node[node].id])
        produced = {e.path.steps[0].key for e in events if e.type == metadata_store_pb2.Event.OUTPUT}
        assert outputs <= produced, (node, produced)
        artifacts = store.get_artifacts_by_id([e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT])
        assert all(a.state == metadata_store_pb2.Artifact.LIVE and os.path.exists(a.uri) for a in artifacts)
    # the Trainer consumed the Transform's outputs: lineage is recorded
    trainer_inputs = {e.path.steps[0].key for e in store.get_events_by_execution_ids([by_node[tinyml_pipeline.TRAINER].id])
                      if e.type == metadata_store_pb2.Event.INPUT}
    assert {"examples", "transform_graph", "schema"} <= trainer_inputs


def test_model_beats_chance_and_is_blessed(runs):
    _, (first, _, _) = runs
    print(f"tiny e2e eval accuracy: {first.eval_accuracy}, per class: {first.per_class_accuracy}")
    assert first.eval_accuracy is not None and first.eval_accuracy > CHANCE + 0.1, first.eval_accuracy
    assert first.blessed is (first.eval_accuracy >= 0.3)
    # per-class accuracy comes from TFMA's label slices, one per class present in eval
    assert set(first.per_class_accuracy) == {"_silence_", "_unknown_", "yes", "no", "Up-Ñ"}
    assert all(0.0 <= v <= 1.0 for v in first.per_class_accuracy.values())
    assert os.path.isdir(os.path.join(first.model_uri, "Format-Serving"))


def test_planted_bad_wav_is_reported_not_fatal(runs):
    _, (first, _, _) = runs
    with open(first.ingestion_report) as f:
        report = json.load(f)
    assert [s["file"] for s in report["skipped"]] == ["yes/deadbeef_nohash_0.wav"]
    assert report["skipped"][0]["reason"] == "unreadable WAV (not a WAVE file)"  # wave rejects the header


def test_unchanged_reruns_hit_the_cache(runs):
    _, (first, second, third) = runs
    upstream = [n for n in PRODUCING_NODES if n != tinyml_pipeline.EVALUATOR]
    assert all(_by_node(second)[n].state == "cached" for n in upstream), _by_node(second)
    # The first blessing becomes the baseline, so the Evaluator re-runs once; then it too is cached.
    expected = "done" if first.blessed else "cached"
    assert _by_node(second)[tinyml_pipeline.EVALUATOR].state == expected
    assert all(_by_node(third)[n].state == "cached" for n in PRODUCING_NODES), _by_node(third)
    assert third.eval_accuracy == pytest.approx(first.eval_accuracy)


def test_quantizer_output_is_int8_and_recorded(runs):
    config, (first, _, _) = runs
    q = first.quantization
    assert q["mode"] == "int8" and q["model_bytes"] > 0
    assert os.path.getsize(os.path.join(q["uri"], "model.tflite")) == q["model_bytes"]
    with open(os.path.join(q["uri"], "quantization_report.json")) as f:
        report = json.load(f)
    assert report["inputs"][0]["dtype"] == "int8" and report["outputs"][0]["dtype"] == "int8"
    assert report["inputs"][0]["shape"] == [1, 49, 40]
    assert abs(report["fidelity"]["accuracy_drop"] - q["accuracy_drop"]) < 1e-6
    allowed = config.requirements.max_quantization_drop
    assert q["blessed"] == (q["accuracy_drop"] <= allowed and not report["fidelity"]["collapsed"])


def test_size_gate_blesses_the_tiny_model_for_its_target(runs):
    _, (first, _, _) = runs
    gate = first.size_gate
    assert gate["target"] == "nano33ble_sense" and gate["blessed"] and gate["arena_bytes"] > 0
    assert os.path.exists(gate["report"])


def test_a_target_board_too_small_blocks_the_release_and_says_why(runs, tmp_path):
    config, _ = runs
    versions_before = _registry_versions(config)
    boards = write_tiny_board(tmp_path / "boards")
    small = dataclasses.replace(config, target_device="tiny_mcu", boards_dirs=(boards,))
    summary = run_local.run(small)
    states = {c.node_id: c.state for c in summary.components}
    assert states[tinyml_pipeline.SIZE_GATE] == "done" and states[tinyml_pipeline.TRAINER] == "cached"
    gate = summary.size_gate
    assert not gate["blessed"] and gate["reason"].startswith("RAM: arena ") and gate["reason"].endswith("on tiny_mcu")
    # Nothing reaches devices: the OtaPusher is skipped by its Cond, and the registry is unchanged.
    assert tinyml_pipeline.PUSHER not in states and not summary.release
    assert summary.to_text().count("nothing pushed") == 1
    assert _registry_versions(config) == versions_before
    from pipeline.ui import report

    outcome = report.release_outcome(summary, small)
    assert not outcome["pushed"] and outcome["reasons"][0] == f"The MCU size gate refused it for tiny_mcu: {gate['reason']}"
    # At the slow board's rate, inferences come too far apart for RecognizeCommands: the streaming evaluator says so too.
    stride = summary.streaming["inference_stride_ms"]
    assert stride > 1000 and outcome["reasons"][1:] == [
        f"The StreamingEvaluator refused it: {summary.streaming['reason']}"]
    assert summary.streaming["reason"].startswith(f"at an inference every {stride} ms (target board's estimated latency)")


def _registry(config):
    from components.ota import oci_layout

    return oci_layout.OciLayout(os.path.join(config.release.registry, config.repository))


def _registry_versions(config):
    from components.ota import releases

    return sorted(t for t in _registry(config).tags() if releases.is_version(t))


def test_a_blessed_model_is_pushed_signed_with_fleet_annotations_and_lineage(runs):
    from components.ota import channels, releases

    config, (first, second, third) = runs
    all_blessed = first.blessed and first.quantization["blessed"] and first.size_gate["blessed"]
    assert all_blessed, "the tiny run is expected to pass every gate"
    assert _by_node(first)[tinyml_pipeline.PUSHER].state == "done"
    release = first.release
    assert release["pushed"] == 1 and release["pushed_version"] == "0.1.0"
    assert release["destination"].endswith(f"{config.repository}:0.1.0")
    # The second run re-evaluates against the new baseline, so its pusher runs again, but the model
    # is the same bytes: like TFX's Pusher, it does not push it twice. The third run is all cached.
    assert second.release["pushed_version"] == "0.1.0"
    assert _by_node(third)[tinyml_pipeline.PUSHER].state == "cached"
    store = _registry(config)
    assert _registry_versions(config) == ["0.1.0"]

    public_key = open(config.release.signing_key_file + ".pub", "rb").read()
    files = releases.pull_release(store, "nano33ble_sense-canary", config.repository, public_key)
    quantized = first.quantization["uri"]
    assert files["model.tflite"] == open(os.path.join(quantized, "model.tflite"), "rb").read()
    assert {"model_data.cc", "model_data.h", "micro_op_resolver.h", "device_report.json"} <= set(files)
    # The classes as the dataset names them, with the identifiers firmware uses, in output order.
    mapping = json.loads(files["model_labels.json"])
    assert [row["label"] for row in mapping] == list(config.data.labels) and "Up-Ñ" in config.data.labels
    assert mapping[-1]["identifier"] == "kLabelUpU00D1"
    assert '"Up-\\303\\221"' in files["model_labels.h"].decode()  # UTF-8 bytes, escaped: compiles anywhere
    card = files["model_card.md"].decode()  # the release carries its model card
    assert "## Intended use" in card and "Synthetic" in card and f"- run: {first.run_id}" in card
    assert f"| {config.target_device} | yes |" in card

    annotations = store.get_manifest(store.resolve("0.1.0")["digest"])["annotations"]
    assert annotations[releases.TARGETS_ANNOTATION].split(",")[0] == "nano33ble_sense"
    assert annotations[releases.FRONTEND_ANNOTATION] == config.family.input_processing_hash(config)
    assert annotations[releases.RUN_ANNOTATION] == first.run_id
    assert int(annotations[releases.ARENA_ANNOTATION]) == first.size_gate["arena_bytes"]
    assert "CONV_2D:v" in annotations[releases.OPS_ANNOTATION]
    lineage = json.loads(annotations[releases.LINEAGE_ANNOTATION])
    mlmd = _store(config)
    quantized_artifact = mlmd.get_artifacts_by_id([lineage["model"]])[0]
    assert quantized_artifact.uri == quantized
    assert mlmd.get_artifacts_by_id([lineage["model_blessing"]])[0].uri == first.artifact_uris[
        tinyml_pipeline.EVALUATOR]["blessing"]
    history = channels.history(store, "nano33ble_sense", "canary")
    assert history[0].action == "push" and history[0].version == "0.1.0" and history[0].previous is None


def _execution(store, summary, node):
    run = store.get_context_by_type_and_name("pipeline_run", summary.run_id)
    return next(e for e in store.get_executions_by_context(run.id) if run_local.node_id_of(store, e) == node)


def test_the_test_split_is_measured_once_after_the_gates_and_decides_nothing(runs):
    from components.ota import releases
    from components.tflite_quantizer import executor as quantizer_executor

    config, (first, _, _) = runs
    assert first.test["examples"] > 0 and 0.0 <= first.test["quantized_accuracy"] <= 1.0
    store = _store(config)
    # The decisions read eval only: the Evaluator's split, and the quantizer's calibration and fidelity splits.
    evaluator = _execution(store, first, tinyml_pipeline.EVALUATOR)
    assert json.loads(evaluator.custom_properties["example_splits"].string_value) == ["eval"]
    assert (quantizer_executor.CALIBRATION_SPLIT, quantizer_executor.FIDELITY_SPLIT) == ("train", "eval")
    trainer = _execution(store, first, tinyml_pipeline.TRAINER)
    assert json.loads(trainer.custom_properties["eval_args"].string_value)["splits"] == ["eval"]
    # It ran after every gate (inside the pusher's condition), and its figure travels in the release.
    order = [c.node_id for c in first.components]
    assert order.index(tinyml_pipeline.TEST_EVALUATOR) > order.index(tinyml_pipeline.SIZE_GATE)
    annotations = _registry(config).get_manifest(_registry(config).resolve("0.1.0")["digest"])["annotations"]
    assert annotations[releases.TEST_INT8_ACCURACY_ANNOTATION] == f"{first.test['quantized_accuracy']:.4f}"
    assert int(annotations[releases.TEST_EXAMPLES_ANNOTATION]) == first.test["examples"]
    with open(os.path.join(first.test["uri"], "test_report.json")) as f:
        report = json.load(f)
    with open(first.ingestion_report) as f:  # every test example of the ExampleGen, and no other
        assert report["examples"] == sum(json.load(f)["examples"]["test"].values())
