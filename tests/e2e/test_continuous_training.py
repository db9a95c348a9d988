"""Continuous training on spans: labelled field data collected as a new span reaches the Trainer
(checked in ML Metadata and in the examples it trained on), the old span stays in, and the CLI refuses
what would lose data."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import tfrecords
from components.ingestion import SPANS_READ_PROPERTY
from pipeline import continuous, pipeline as tinyml_pipeline
from pipeline.runners import local as run_local
from pipeline.tasks.kws import generate
from pipeline.ui.cli import main
from tests.helpers import tiny_config, write_config_yaml


def _store(config):
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    return metadata_store.MetadataStore(connection)


def _node_execution(store, summary, node):
    run = store.get_context_by_type_and_name("pipeline_run", summary.run_id)
    return next(e for e in store.get_executions_by_context(run.id) if run_local.node_id_of(store, e) == node)


def _inputs(store, execution, key):
    events = [e for e in store.get_events_by_execution_ids([execution.id])
              if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == key]
    return store.get_artifacts_by_id([e.artifact_id for e in events])


def _training_sources(examples_uri):
    files = glob.glob(os.path.join(examples_uri, "Split-train", "*"))
    spec = {"source": tf.io.FixedLenFeature([], tf.string)}
    return [s.decode() for batch in tfrecords.record_dataset(files).batch(512).map(
        lambda b: tf.io.parse_example(b, spec)) for s in batch["source"].numpy()]


@pytest.fixture(scope="module")
def retrained(tiny_dataset, tmp_path_factory):
    """Run 1 on span 0 (the tiny dataset; it stops after the quantizer), a field span collected under rain
    through the CLI, run 2 through every gate to the OTA registry."""
    work = tmp_path_factory.mktemp("continuous")
    data = str(work / "data")
    shutil.copytree(tiny_dataset, os.path.join(data, "span-0"))
    base = tiny_config(str(work / "run"), data)
    config = dataclasses.replace(base, data=dataclasses.replace(base.data, training_spans=2))
    config_file = write_config_yaml(config, str(work / "config.yaml"))
    first = run_local.run(config, until=tinyml_pipeline.QUANTIZER)
    collect = CliRunner().invoke(main, ["fleet", "collect", "--config", config_file, "--workdir", str(work / "run"),
                                        "--shift", "rain", "--minutes", "1.5", "--voices", "6"])
    second = run_local.run(config)
    return config, config_file, first, collect, second


def test_a_field_span_is_collected_with_ground_truth_labels_and_speaker_splits(retrained):
    config, _, _, collect, _ = retrained
    assert collect.exit_code == 0, collect.output
    span = os.path.join(config.data_root, "span-1")
    assert "Span 1:" in collect.output and span in collect.output
    with open(os.path.join(span, "DATASET.json")) as f:
        manifest = json.load(f)
    assert manifest["synthetic"] is True and "ground truth" in manifest["label_source"]
    assert manifest["shift"] == "rain" and manifest["clips"] > 0
    speakers = manifest["speakers"]
    assert all(speakers[s] for s in ("train", "eval", "test"))
    assert not (set(speakers["train"]) & set(speakers["test"])) and not (set(speakers["train"]) & set(speakers["eval"]))
    original = set(os.path.basename(p).split("_nohash_")[0] for p in glob.glob(os.path.join(config.data_root, "span-0",
                                                                                           "*", "*.wav")))
    assert not original & set(speakers["train"] + speakers["eval"] + speakers["test"])   # voices new to the data
    assert os.listdir(os.path.join(span, "_background_noise_"))
    # Speech that is not a command is labelled too: cuts of the campaign's phrases, as _unknown_.
    cuts = glob.glob(os.path.join(span, generate.PHRASES_DIR, "*.wav"))
    assert manifest["phrase_cuts"] == len(cuts) > 0
    assert manifest["examples_before_sampling"]["train"].get("_unknown_", 0) >= sum(
        os.path.basename(c).split("_nohash_")[0] in speakers["train"] for c in cuts)


def test_the_retrained_model_trained_on_the_old_and_the_new_span(retrained):
    config, _, first, _, second = retrained
    store = _store(config)
    for summary, spans in ((first, "0"), (second, "0,1")):
        trainer = _node_execution(store, summary, tinyml_pipeline.TRAINER)
        transformed = _inputs(store, trainer, "examples")
        assert len(transformed) == 1
        # Trainer <- Transform <- the ExampleGen's examples, whose ML Metadata names the spans they hold.
        producer = [e for e in store.get_events_by_artifact_ids([transformed[0].id])
                    if e.type == metadata_store_pb2.Event.OUTPUT][0]
        examples = _inputs(store, store.get_executions_by_id([producer.execution_id])[0], "examples")
        assert len(examples) == 1
        assert examples[0].custom_properties[SPANS_READ_PROPERTY].string_value == spans
        assert examples[0].custom_properties["span"].int_value == int(spans[-1])
        sources = _training_sources(examples[0].uri)
        assert {s.split("/", 1)[0] for s in sources} == {f"span-{n}" for n in spans.split(",")}


def test_collecting_refuses_an_existing_span_and_a_config_without_spans(retrained, tmp_path):
    config, config_file, _, _, _ = retrained
    runner = CliRunner()
    again = runner.invoke(main, ["fleet", "collect", "--config", config_file, "--workdir", str(tmp_path),
                                 "--shift", "rain", "--span", "1"])
    assert again.exit_code != 0 and "append-only" in again.output and "Traceback" not in again.output
    plain = write_config_yaml(dataclasses.replace(config, data=dataclasses.replace(config.data, training_spans=0)),
                              str(tmp_path / "plain.yaml"))
    refused = runner.invoke(main, ["fleet", "collect", "--config", plain, "--workdir", str(tmp_path),
                                   "--shift", "rain"])
    assert refused.exit_code != 0 and "data.training_spans" in refused.output
    unknown = runner.invoke(main, ["fleet", "collect", "--config", config_file, "--workdir", str(tmp_path),
                                   "--shift", "snow"])
    assert unknown.exit_code != 0 and "Unknown field shift 'snow'" in unknown.output


def test_a_retrain_is_compared_per_span_on_tflite_micro_and_shown_in_the_monitoring_report(retrained):
    from pipeline.ui import monitoring_report

    config, _, first, _, second = retrained
    comparison = continuous.compare_runs(config, first, second)
    assert comparison["before"]["spans_read"] == "0" and comparison["after"]["spans_read"] == "0,1"
    with open(second.ingestion_report) as f:
        test_examples = sum(json.load(f)["examples"]["test"].values())
    for model in ("before", "after"):
        spans = comparison["accuracy"][model]
        assert set(spans) == {"span-0", "span-1"}
        # every test example of the run counted once, in its own span
        assert sum(row["examples"] for row in spans.values()) == test_examples
        assert all(0.0 <= row["accuracy"] <= 1.0 for row in spans.values())
    continuous.record_retrain(config, comparison)
    rows = monitoring_report.build(config)["retrains"]
    assert [row[3] for row in rows] == ["span-0", "span-1"]
    assert rows[1][5] == f"{comparison['accuracy']['before']['span-1']['accuracy']:.4f}"
    page = monitoring_report.write(config, os.path.join(config.workdir, "report"))
    assert "Accuracy recovered by a retrain" in open(page).read() and "No retrain measured yet" not in open(page).read()


def test_the_retrained_model_passes_every_gate_and_goes_to_canary_with_its_spans_in_the_lineage(retrained):
    from components.ota import publish, releases

    config, _, _, _, second = retrained
    assert second.blessed and second.quantization["blessed"] and second.size_gate["blessed"], \
        "the tiny config's gates are expected to bless the retrained model"
    assert second.release["pushed"] and second.release["pushed_version"] == "0.1.0"
    store = publish.open_store(config.release.registry, config.repository)
    public_key = open(config.release.signing_key_file + ".pub", "rb").read()
    files = releases.pull_release(store, f"{config.target_device}-canary", config.repository, public_key)
    assert files["model.tflite"] == continuous.quantized_model(second)
    assert f"{config.target_device}-stable" not in store.tags()     # stable only through `promote`'s canary gate
    # the release's ML Metadata lineage leads back to the examples of both spans
    lineage = json.loads(store.get_manifest(store.resolve("0.1.0")["digest"])["annotations"][
        releases.LINEAGE_ANNOTATION])
    mlmd = _store(config)
    quantizer = [e for e in mlmd.get_events_by_artifact_ids([lineage["model"]])
                 if e.type == metadata_store_pb2.Event.OUTPUT][0]
    assert quantizer.execution_id == _node_execution(mlmd, second, tinyml_pipeline.QUANTIZER).id
    assert continuous.spans_read(config, second) == "0,1"



def test_labelled_uploaded_windows_become_the_next_training_span(tiny_dataset, tmp_path):
    """The path real data takes: windows devices uploaded with their telemetry, labelled, ingested, then written
    as a training span by `telemetry to-span`, split by device; a window that is not audio is skipped."""
    from components.audio_example_gen import wav
    from pipeline import fleet
    from tests.support.telemetry import write_batch

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data / "span-0")
    base = tiny_config(str(tmp_path / "run"), str(data))
    config = dataclasses.replace(base, data=dataclasses.replace(base.data, training_spans=2))
    config_file = write_config_yaml(config, str(tmp_path / "config.yaml"))
    batch = tmp_path / "batch"
    (batch / "samples").mkdir(parents=True)
    records = []
    words = [w for w in config.data.words]
    for device in range(6):
        for n, label in enumerate(words + ["_unknown_", "_silence_"]):
            name = f"dev{device}_{n}.wav"
            clip = glob.glob(os.path.join(tiny_dataset, words[n % len(words)], "*.wav"))[device]
            payload = open(clip, "rb").read() if label != "_silence_" else wav.write_wav(
                np.zeros(16000, np.int16), 16000)
            (batch / "samples" / name).write_bytes(payload)
            records.append({"type": "sample", "device_id": f"dev-{device:04d}", "device_class": config.target_device,
                            "model_version": "0.1.0", "time": "2026-12-01T10:00:00Z", "period": 0, "file": name,
                            "label": label, "label_source": fleet.GROUND_TRUTH})
    (batch / "samples" / "dev0_junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    records.append({**records[0], "file": "dev0_junk.wav"})
    runner = CliRunner()
    ingested = runner.invoke(main, ["telemetry", "ingest", write_batch(str(batch), records), "--config", config_file,
                                    "--workdir", str(tmp_path / "run")])
    assert ingested.exit_code == 0, ingested.output
    to_span = ["telemetry", "to-span", "--config", config_file, "--workdir", str(tmp_path / "run")]
    unsaid = runner.invoke(main, to_span)   # a label a device uploaded is a claim: the operator says whose labels
    assert unsaid.exit_code != 0 and "Say where the labels come from" in unsaid.output
    assert not (data / "span-1").exists()
    made = runner.invoke(main, to_span + ["--trust-uploaded-labels", "--synthetic"])
    assert made.exit_code == 0, made.output
    assert "Span 1:" in made.output and "1 skipped" in made.output
    span = data / "span-1"
    manifest = json.loads((span / "DATASET.json").read_text())
    assert manifest["clips"] == 6 * (len(words) + 1) and manifest["background_windows"] == 6
    assert manifest["synthetic"] is True and manifest["skipped"][0]["file"] == "dev0_junk.wav"
    assert manifest["telemetry_spans"] == [1] and "trusted" in manifest["labels"]
    devices = manifest["devices"]
    assert all(devices[s] for s in ("train", "eval", "test")) and not set(devices["train"]) & set(devices["test"])
    assert sorted(os.listdir(span / "_unknown_")) and os.listdir(span / "_background_noise_") == ["field_silence.wav"]

    # The next batch: the same devices and a new one, labelled by a labelling step's file. By default only the
    # telemetry not yet made into a span is read, and every device keeps the split it had.
    second = tmp_path / "batch2"
    (second / "samples").mkdir(parents=True)
    later, rows = [], ["span,file,label"]
    for device in range(7):
        name = f"later{device}.wav"
        shutil.copy(batch / "samples" / f"dev{min(device, 5)}_0.wav", second / "samples" / name)
        later.append({**records[0], "device_id": f"dev-{device:04d}", "file": name, "label": "_silence_"})
        rows.append(f"2,{name},{words[0]}")   # the file's label overrides the uploaded claim
    rows.append("2,not-uploaded.wav,yes")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert runner.invoke(main, ["telemetry", "ingest", write_batch(str(second), later), "--config", config_file,
                                "--workdir", str(tmp_path / "run")]).exit_code == 0
    labelled = runner.invoke(main, to_span + ["--labels", str(tmp_path / "labels.csv")])
    assert labelled.exit_code == 0, labelled.output
    manifest2 = json.loads((data / "span-2" / "DATASET.json").read_text())
    assert manifest2["telemetry_spans"] == [2] and manifest2["clips"] == 7 and manifest2["synthetic"] is False
    assert manifest2["label_source"] == ["labels file labels.csv"]
    before = {d: split for split, ids in devices.items() for d in ids}
    after = {d: split for split, ids in manifest2["devices"].items() for d in ids}
    assert all(after[d] == before[d] for d in before) and after["dev-0006"] == "train"
    assert len(os.listdir(data / "span-2" / words[0])) == 7
    bad = tmp_path / "bad.csv"
    bad.write_text("span,file,label\nseven,x.wav,yes\n")
    refused = runner.invoke(main, to_span + ["--labels", str(bad), "--from-span", "1"])
    assert refused.exit_code != 0 and "line 2" in refused.output and "Traceback" not in refused.output
    again = runner.invoke(main, ["telemetry", "to-span", "--config", config_file, "--workdir", str(tmp_path / "run"),
                                 "--from-span", "5", "--trust-uploaded-labels"])
    assert again.exit_code != 0 and "No labelled sample" in again.output
