"""AudioExampleGen, StatisticsGen and DataValidationGate executors on a real tiny dataset."""

import dataclasses
import json
import os
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components import tfrecords
from components.audio_example_gen import component as example_gen_component
from components.audio_example_gen import executor as example_gen_executor
from components.audio_example_gen import layout, wav
from components.data_validation_gate import executor as gate_executor
from tests.helpers import TINY_WORDS, make_artifact, write_schema_for

LABELS = ("_silence_", "_unknown_") + TINY_WORDS
PLANTED = {
    "yes/badc0de0_nohash_0.wav": (b"this is not audio", "not a RIFF/WAVE file"),
    "no/badc0de1_nohash_0.wav": (b"", "empty file"),
    "up/badc0de2_nohash_0.wav": (wav.write_wav(np.zeros(8000, np.int16), 8000), "sample rate 8000 Hz"),
}


def _artifact(cls, uri, splits=None):
    properties = {"split_names": artifact_utils.encode_split_names(list(splits))} if splits else {}
    artifact = make_artifact(cls, uri, **properties)
    os.makedirs(artifact.uri, exist_ok=True)
    return artifact


def _read_examples(examples, split):
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "data_tfrecord*")
    records = tfrecords.record_dataset(tf.io.gfile.glob(pattern))
    return [tf.train.Example.FromString(r.numpy()) for r in records]


@pytest.fixture(scope="module")
def ingested(tiny_dataset, tmp_path_factory):
    """Runs the AudioExampleGen executor on a copy of the tiny dataset with planted bad files."""
    work = tmp_path_factory.mktemp("components")
    root = str(work / "data")
    shutil.copytree(tiny_dataset, root)
    for relative, (content, _) in PLANTED.items():
        with open(os.path.join(root, relative), "wb") as f:
            f.write(content)
    examples = _artifact(standard_artifacts.Examples, work / "examples")
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: root,
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_component.split_input_config()),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Output()),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        example_gen_executor.WORDS_KEY: json.dumps(list(TINY_WORDS)),
        example_gen_executor.UNKNOWN_FRACTION_KEY: 0.2,
        example_gen_executor.SILENCE_FRACTION_KEY: 0.2,
        example_gen_executor.SAMPLE_RATE_KEY: 16000,
        example_gen_executor.CLIP_SAMPLES_KEY: 16000,
        example_gen_executor.SEED_KEY: 3,
    }
    example_gen_executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    return work, examples, exec_properties


def test_splits_are_written_as_tfx_writes_them_without_its_in_memory_shuffle(ingested):
    """The ExampleGen skips TFX's pre-write Reshuffle (a GroupByKey that holds a split in memory on the
    DirectRunner: components/planned_example_gen.py); the examples, and their order, are what TFX's
    WriteSplit writes."""
    from tfx.components.example_gen import write_split

    class WithTfxWriteSplit(example_gen_executor.Executor):
        def write_split(self, output_split_path):
            return write_split.WriteSplit(output_split_path, "tfrecords_gzip")

    work, examples, exec_properties = ingested
    tfx_written = _artifact(standard_artifacts.Examples, work / "tfx_written")
    WithTfxWriteSplit().Do({}, {standard_component_specs.EXAMPLES_KEY: [tfx_written]}, exec_properties)
    assert tfx_written.split_names == examples.split_names

    def content(example):
        feature = example.features.feature
        return feature["source"].bytes_list.value[0], feature["audio"].SerializeToString()

    for split in ("train", "eval", "test"):
        ours, theirs = _read_examples(examples, split), _read_examples(tfx_written, split)
        assert ours and [content(e) for e in ours] == [content(e) for e in theirs]


def test_examples_written_plain_are_the_gzipped_ones_uncompressed(ingested):
    """``compression: none`` (the pipeline's default, data.examples_compression) writes the same records in
    the same order, in files without the ".gz" suffix that TFX's readers take as plain TFRecords."""
    from components import planned_example_gen

    work, examples, exec_properties = ingested
    plain = _artifact(standard_artifacts.Examples, work / "plain")
    example_gen_executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [plain]},
                                       {**exec_properties, planned_example_gen.COMPRESSION_KEY: "none"})
    for split in ("train", "eval", "test"):
        plain_files = os.listdir(artifact_utils.get_split_uri([plain], split))
        gzip_files = os.listdir(artifact_utils.get_split_uri([examples], split))
        assert plain_files == ["data_tfrecord-00000-of-00001"] and gzip_files == ["data_tfrecord-00000-of-00001.gz"]
        with open(os.path.join(artifact_utils.get_split_uri([plain], split), plain_files[0]), "rb") as f:
            assert f.read(2) != b"\x1f\x8b"   # not a gzip stream
        assert [e.SerializeToString() for e in _read_examples(plain, split)] == \
            [e.SerializeToString() for e in _read_examples(examples, split)]
    with pytest.raises(ValueError, match="Unknown examples compression 'zstd'.*none, gzip"):
        example_gen_executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [
            _artifact(standard_artifacts.Examples, work / "zstd")]},
            {**exec_properties, planned_example_gen.COMPRESSION_KEY: "zstd"})


def test_each_split_is_written_in_the_seeded_shuffle_of_the_plan_not_grouped_by_label(ingested):
    """Plans are sorted by path (one folder per label); written in that order, a Trainer whose shuffle
    buffer is shorter than a label's run would fill its first batches from the first labels."""
    import itertools

    from components import planned_example_gen
    from components.ingestion import gfile_filesystem

    work, examples, exec_properties = ingested
    root = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    noise = {relative: len(wav.read_wav(open(os.path.join(root, relative), "rb").read(), 16000))
             for relative in layout.noise_files(root, gfile_filesystem())}
    plan = layout.plan_clips(root, TINY_WORDS, gfile_filesystem(), noise, clip_samples=16000, unknown_fraction=0.2,
                             silence_fraction=0.2, seed=exec_properties[example_gen_executor.SEED_KEY])
    shuffled = planned_example_gen.write_order(plan, exec_properties[example_gen_executor.SEED_KEY])
    assert sorted(shuffled, key=plan.index) == plan and shuffled != plan
    assert shuffled == planned_example_gen.write_order(plan, exec_properties[example_gen_executor.SEED_KEY])
    for split in layout.SPLITS:
        written = [e.features.feature["source"].bytes_list.value[0].decode() for e in _read_examples(examples, split)]
        expected = [c.source for c in shuffled if c.split == split and c.relative not in PLANTED]
        assert written == expected, split
    train_labels = [e.features.feature["label"].bytes_list.value[0] for e in _read_examples(examples, "train")]
    label_runs = sum(1 for _ in itertools.groupby(train_labels))
    assert label_runs > 3 * len(set(train_labels)), label_runs
    # The plan's chunk files (planned_example_gen.ReadPlan) are gone once the examples are written.
    assert not os.path.exists(os.path.join(examples.uri, planned_example_gen.PLAN_FOLDER))


def test_plan_chunks_give_back_the_plan_in_order(tmp_path):
    from components import planned_example_gen

    plan = [layout.ClipRef(f"Yes Please/sp{i}_nohash_0 (copy) é\n.wav", "yes", "Yes Please", f"sp{i}", "train",
                           offset=i * 7, gain=0.5 + i / 3) for i in range(1100)]
    paths = planned_example_gen.write_plan_chunks(plan, str(tmp_path / "plan"), chunk_items=512)
    assert len(paths) == 3 and paths == sorted(paths)
    assert [c for p in paths for c in planned_example_gen.read_plan_chunk(p, layout.ClipRef)] == plan
    assert planned_example_gen.write_plan_chunks([], str(tmp_path / "empty")) == []


def test_read_plan_brings_every_planned_item_into_beam_once(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from components import planned_example_gen

    plan = [layout.ClipRef(f"w/s{i}_nohash_0.wav", "w", "w", f"s{i}", layout.SPLITS[i % 3]) for i in range(100)]
    paths = planned_example_gen.write_plan_chunks(plan, str(tmp_path / "plan"), chunk_items=7)
    assert len(paths) == 15
    with beam.Pipeline() as pipeline:
        assert_that(pipeline | planned_example_gen.ReadPlan(paths, layout.ClipRef), equal_to(plan))


def _slow_for_early_items(clip: layout.ClipRef) -> str:
    """Finishes the reads out of order: the earlier the item, the longer its read takes."""
    number = int(clip.speaker[1:])
    time.sleep(0.002 * (20 - number % 20))
    if clip.word == "unreadable":
        raise OSError(f"cannot read {clip.relative}")
    return clip.relative.upper()


def test_read_plan_reads_ahead_and_keeps_the_order(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from components import planned_example_gen

    plan = [layout.ClipRef(f"w/s{i}_nohash_0.wav", "w", "w", f"s{i}", "train") for i in range(60)]
    paths = planned_example_gen.write_plan_chunks(plan, str(tmp_path / "plan"), chunk_items=25)
    for ahead in (8, 0):  # 0: each read when its item's turn comes, no threads
        fetch_ahead = planned_example_gen._FetchAhead(layout.ClipRef, _slow_for_early_items, ahead=ahead)
        fetch_ahead.setup()
        try:
            fetched = [pair for path in paths for pair in fetch_ahead.process(path)]
        finally:
            fetch_ahead.teardown()
        assert fetched == [(c, c.relative.upper()) for c in plan], ahead
    with beam.Pipeline() as pipeline:
        assert_that(pipeline | planned_example_gen.ReadPlan(paths, layout.ClipRef, _slow_for_early_items),
                    equal_to([(c, c.relative.upper()) for c in plan]))

    broken = plan[:5] + [dataclasses.replace(plan[5], word="unreadable")] + plan[6:10]
    fetch_ahead = planned_example_gen._FetchAhead(layout.ClipRef, _slow_for_early_items, ahead=8)
    fetch_ahead.setup()
    try:
        process = fetch_ahead.process(planned_example_gen.write_plan_chunks(broken, str(tmp_path / "broken"))[0])
        assert [next(process) for _ in range(5)] == [(c, c.relative.upper()) for c in broken[:5]]
        with pytest.raises(OSError, match="cannot read w/s5_nohash_0.wav"):
            next(process)
    finally:
        fetch_ahead.teardown()


def test_example_gen_writes_three_splits_with_decodable_audio(ingested):
    _, examples, _ = ingested
    assert artifact_utils.decode_split_names(examples.split_names) == list(layout.SPLITS)
    for split in layout.SPLITS:
        records = _read_examples(examples, split)
        assert records, split
        for example in records[:5]:
            f = example.features.feature
            assert len(f["audio"].bytes_list.value[0]) == 2 * 16000
            assert f["label"].bytes_list.value[0].decode() in LABELS
            assert -100.0 <= f["rms_dbfs"].float_list.value[0] <= 0.0


def test_example_gen_reports_and_skips_bad_files(ingested):
    _, examples, _ = ingested
    with open(os.path.join(examples.uri, example_gen_executor.INGESTION_REPORT_FILE)) as f:
        report = json.load(f)
    skipped = {item["file"]: item["reason"] for item in report["skipped"]}
    assert set(skipped) == set(PLANTED)
    for relative, (_, reason) in PLANTED.items():
        assert reason in skipped[relative]
    assert examples.get_int_custom_property(example_gen_executor.SKIPPED_FILES_PROPERTY) == len(PLANTED)
    sources = {e.features.feature["source"].bytes_list.value[0].decode()
               for split in layout.SPLITS for e in _read_examples(examples, split)}
    assert not sources & set(PLANTED)
    # the report's counts are the examples actually written
    for split in layout.SPLITS:
        written = _read_examples(examples, split)
        assert sum(report["examples"][split].values()) == len(written)


def test_example_gen_keeps_each_speaker_in_one_split(ingested):
    _, examples, _ = ingested
    seen = {}
    for split in layout.SPLITS:
        for example in _read_examples(examples, split):
            f = example.features.feature
            if f["label"].bytes_list.value[0] != layout.SILENCE_LABEL.encode():
                seen.setdefault(f["speaker"].bytes_list.value[0], set()).add(split)
    assert seen and all(len(splits) == 1 for splits in seen.values())


@pytest.fixture(scope="module")
def statistics(ingested):
    work, examples, _ = ingested
    stats = _artifact(standard_artifacts.ExampleStatistics, work / "statistics", layout.SPLITS)
    statistics_executor.Executor().Do(
        {standard_component_specs.EXAMPLES_KEY: [examples]},
        {standard_component_specs.STATISTICS_KEY: [stats]},
        {standard_component_specs.EXCLUDE_SPLITS_KEY: "[]"})
    return work, stats


def _validate(work, stats, labels, name):
    schema = _artifact(standard_artifacts.Schema, work / f"schema-{name}")
    write_schema_for(labels, os.path.join(schema.uri, "schema.pbtxt"))
    anomalies = _artifact(standard_artifacts.ExampleAnomalies, work / f"anomalies-{name}")
    gate_executor.Executor().Do(
        {standard_component_specs.STATISTICS_KEY: [stats], standard_component_specs.SCHEMA_KEY: [schema]},
        {standard_component_specs.ANOMALIES_KEY: [anomalies]},
        {standard_component_specs.EXCLUDE_SPLITS_KEY: "[]"})
    return anomalies


def test_gate_passes_data_that_matches_the_curated_schema(statistics):
    work, stats = statistics
    anomalies = _validate(work, stats, LABELS, "ok")
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    for split in ("train", "eval", "test"):  # each split checked, and found clean
        with open(os.path.join(anomalies.uri, f"Split-{split}", "SchemaDiff.pb"), "rb") as f:
            assert not anomalies_pb2.Anomalies.FromString(f.read()).anomaly_info, split


def test_gate_stops_the_run_on_anomalies_with_a_readable_message(statistics):
    work, stats = statistics
    with pytest.raises(gate_executor.DataAnomaliesError) as err:
        _validate(work, stats, tuple(l for l in LABELS if l != "up"), "missing-up")
    message = str(err.value)
    assert "feature 'label'" in message and "split 'train'" in message
    assert "anomalies-missing-up" in message
