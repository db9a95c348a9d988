"""The motion task family through the whole pipeline on LocalDagRunner, by configuration only."""

import dataclasses
import glob
import hashlib
import itertools
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components import tfrecords
from pipeline import config as config_lib
from pipeline import pipeline as tinyml_pipeline
from pipeline.runners import local as run_local
from pipeline.ui import report
from pipeline.tasks.motion import generate, normalization
from tests.helpers import MOTION_EXAMPLE_GEN, rename_class_folder

MOTION_CONFIG = os.path.join(os.path.dirname(config_lib.DEFAULT_CONFIG), "motion.yaml")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Classes named as a real dataset may name its folders: capitals, a space, a non-ASCII letter.
RENAMED = {"wave": "Wave Hand", "circle": "Círculo"}
LABELS = ("idle", "Wave Hand", "Círculo", "shake")
BAD_FILES = {  # planted in the generated data: file -> what the skip report must say
    "Wave Hand/badfile_nohash_0.csv": ("timestamp,ax,ay,az,gx,gy\n0,0,0,1,0,0\n", "missing column(s) gz"),
    "Wave Hand/badfile_nohash_1.csv": (None, "is 'oops', not a number"),
    "idle/badfile_nohash_2.csv": (None, "give 50.0 Hz, not the configured 100 Hz"),
    "idle/badfile_nohash_3.csv": (None, "fewer than one window of 200"),
}


def _recording(rate: float, n: int, bad_row: int = -1, extra_column: str = "") -> str:
    rows = ["timestamp,ax,ay,az,gx,gy,gz" + (f",{extra_column}" if extra_column else "")]
    for i in range(n):
        values = ["oops" if i == bad_row else "0.1", "0.0", "1.0", "0.5", "0.0", "0.0"] + (
            ["21.5"] if extra_column else [])
        rows.append(f"{i / rate:.4f}," + ",".join(values))
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def motion_data(tmp_path_factory):
    """A tiny generated gesture set with the bad files planted; do not modify it."""
    data = str(tmp_path_factory.mktemp("motion") / "data")
    generate.generate_dataset(generate.MotionSpec(subjects=6, repetitions=2, seconds=4.0), data)
    for old, new in RENAMED.items():
        rename_class_folder(data, old, new)
    contents = {"Wave Hand/badfile_nohash_1.csv": _recording(100, 300, bad_row=40),
                "idle/badfile_nohash_2.csv": _recording(50, 300),
                "idle/badfile_nohash_3.csv": _recording(100, 150)}
    for name, (text, _) in BAD_FILES.items():
        with open(os.path.join(data, name), "w") as f:
            f.write(text or contents[name])
    for name, content in GOOD_AS_LOGGERS_WRITE_THEM.items():
        with open(os.path.join(data, name), "wb") as f:
            f.write(content)
    return data


# Readable files as data loggers and spreadsheets write them: a byte-order mark with CRLF line ends
# and an upper-case extension; a Windows-1252 header.
GOOD_AS_LOGGERS_WRITE_THEM = {
    "shake/bomcrlf_nohash_0.CSV": b"\xef\xbb\xbf" + _recording(100, 300).replace("\n", "\r\n").encode(),
    "shake/latin_nohash_0.csv": _recording(100, 300, extra_column="température").encode("cp1252"),
}


def _motion_schema(path: str) -> str:
    """The curated motion schema with the renamed classes in its label domain."""
    with open(os.path.join(REPO, "schemas", "motion", "schema.pbtxt"), encoding="utf-8") as f:
        text = f.read()
    head = text[:text.index("string_domain")]
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + 'string_domain {\n  name: "label"\n' + "".join(f'  value: "{label}"\n' for label in LABELS)
                + "}\n")
    return path


def _tiny_motion_config(data: str, workdir: str, name: str, **motion) -> config_lib.PipelineConfig:
    base = config_lib.load_config(MOTION_CONFIG)
    os.makedirs(workdir, exist_ok=True)
    schema = _motion_schema(os.path.join(workdir, "motion_schema.pbtxt"))
    return dataclasses.replace(
        base, pipeline_name=name, data=dataclasses.replace(base.data, root=data, classes=LABELS, schema=schema),
        requirements=dataclasses.replace(base.requirements, min_accuracy=0.5),
        training=dataclasses.replace(base.training, epochs=10),
        motion=dataclasses.replace(base.motion, **motion),
    ).with_workdir(workdir)


@pytest.fixture(scope="module")
def motion_run(motion_data, tmp_path_factory):
    config = _tiny_motion_config(motion_data, str(tmp_path_factory.mktemp("motion-run")), "motion-tiny")
    return config, run_local.run(config)


@pytest.fixture(scope="module")
def spectrum_run(motion_data, tmp_path_factory):
    config = _tiny_motion_config(motion_data, str(tmp_path_factory.mktemp("spectrum-run")), "motion-spectrum",
                                 features="spectrum", spectral_bins=24)
    return config, run_local.run(config)


def test_the_whole_pipeline_runs_and_releases(motion_run):
    config, summary = motion_run
    states = {c.node_id: c.state for c in summary.components}
    assert states[MOTION_EXAMPLE_GEN] == "done" and states[tinyml_pipeline.PUSHER] == "done"
    assert tinyml_pipeline.SCHEMA_GEN in states  # the curated motion schema, validated against every split
    assert summary.eval_accuracy > 0.5 and summary.blessed  # four classes: chance is 0.25
    assert summary.quantization["blessed"] and summary.size_gate["blessed"] and summary.release["pushed"]


def test_bad_recordings_are_skipped_with_their_reason(motion_run):
    _, summary = motion_run
    with open(summary.ingestion_report) as f:
        skipped = {s["file"]: s["reason"] for s in json.load(f)["skipped"]}
    assert set(skipped) == set(BAD_FILES)
    for name, (_, reason) in BAD_FILES.items():
        assert reason in skipped[name], (name, skipped[name])


def test_files_as_loggers_write_them_are_read(motion_run, motion_data):
    _, summary = motion_run
    with open(summary.ingestion_report) as f:
        report = json.load(f)
    generated = len(os.listdir(os.path.join(motion_data, "shake"))) - len(GOOD_AS_LOGGERS_WRITE_THEM)
    assert report["files_read"]["shake"] == generated + len(GOOD_AS_LOGGERS_WRITE_THEM)  # BOM, CRLF, .CSV, cp1252
    assert report["files_read"]["Wave Hand"] == len(os.listdir(os.path.join(motion_data, "Wave Hand"))) - 2


def test_windows_never_span_recordings_or_splits(motion_run):
    config, summary = motion_run
    examples = summary.artifact_uris[MOTION_EXAMPLE_GEN]["examples"]
    recordings_by_split = {}
    for split_dir in glob.glob(os.path.join(examples, "Split-*")):
        files = glob.glob(os.path.join(split_dir, "*"))
        features = [tf.train.Example.FromString(r.numpy()).features.feature
                    for r in tfrecords.record_dataset(files)]
        written_recordings = [feature["recording"].bytes_list.value[0].decode() for feature in features]
        if split_dir.endswith("Split-train"):
            # Written in the seeded shuffle of the recordings (components/planned_example_gen.py), so the
            # labels' folders are not written one after the other.
            folders = [recording.split("/")[0] for recording, _ in itertools.groupby(written_recordings)]
            assert sum(1 for _ in itertools.groupby(folders)) > 2 * len(set(folders)), folders
        for feature, recording in zip(features, written_recordings):
            start = int(feature["source"].bytes_list.value[0].decode().split("#")[1])
            assert start == feature["window_index"].int64_list.value[0] * config.hop_samples
            assert all(len(feature[c].float_list.value) == config.window_samples for c in config.motion.channels)
            recordings_by_split.setdefault(os.path.basename(split_dir), set()).add(recording)
    splits = list(recordings_by_split.values())
    assert len(splits) == 3 and all(not (a & b) for i, a in enumerate(splits) for b in splits[i + 1:])


def test_the_normalization_header_matches_the_transform_graph(motion_run):
    config, summary = motion_run
    with open(os.path.join(summary.quantization["uri"], normalization.HEADER_FILE)) as f:
        constants = normalization.parse_header(f.read())
    window, channels = config.window_samples, len(config.motion.channels)
    raw_windows = np.random.default_rng(0).normal(0.5, 2.0, (4, window, channels)).astype(np.float32)
    expected = (raw_windows - np.array(constants["mean"])) * np.array(constants["scale"])
    np.testing.assert_allclose(_transform(summary, config, raw_windows).reshape(expected.shape), expected,
                               rtol=1e-4, atol=1e-4)


def test_the_release_records_the_normalization_hash_and_ships_the_header(motion_run):
    from components.ota import oci_layout, releases

    config, summary = motion_run
    store = oci_layout.OciLayout(os.path.join(config.release.registry, config.repository))
    version = summary.release["pushed_version"]
    with open(config.release.signing_key_file + ".pub", "rb") as f:
        files = releases.pull_release(store, version, config.repository, f.read())
    annotations = store.get_manifest(store.resolve(version)["digest"])["annotations"]
    assert annotations[releases.NORMALIZATION_ANNOTATION] == hashlib.sha256(files["normalization.json"]).hexdigest()
    assert releases.FRONTEND_ANNOTATION not in annotations  # no audio front end here
    assert b"kNormMean[kNormChannels]" in files["normalization.h"]
    card = files["model_card.md"].decode()
    assert "idle, Wave Hand, Círculo, shake" in card and "normalization.h" in card


def test_the_report_covers_the_motion_run(motion_run, tmp_path):
    config, summary = motion_run
    with open(report.write_report(summary, config, str(tmp_path))) as f:
        page = f.read()
    assert "Model inputs (normalized samples x channels)" in page and "simulated IMU gestures" in page
    assert "badfile_nohash_0.csv" in page and f"{summary.eval_accuracy:.4f}" in page


def _transform(summary, config, raw_windows):
    import tensorflow_transform as tft

    graph = tft.TFTransformOutput(summary.artifact_uris[tinyml_pipeline.TRANSFORM]["transform_graph"])
    raw = {c: tf.constant(raw_windows[:, :, i]) for i, c in enumerate(config.motion.channels)}
    raw["label"] = tf.fill([len(raw_windows)] + list(graph.raw_feature_spec()["label"].shape or []), "idle")
    return graph.transform_raw_features(raw, drop_unused_features=True)["features"].numpy()


def test_spectral_features_run_through_and_the_header_says_how_to_compute_them(spectrum_run):
    config, summary = spectrum_run
    assert summary.blessed and summary.release["pushed"] and summary.eval_accuracy > 0.5
    with open(os.path.join(summary.quantization["uri"], normalization.HEADER_FILE)) as f:
        text = f.read()
    assert "constexpr int kSpectralBins = 24;" in text
    constants = normalization.parse_header(text)
    window, channels = config.window_samples, len(config.motion.channels)
    raw_windows = np.random.default_rng(1).normal(0.3, 1.5, (3, window, channels)).astype(np.float32)
    normalized = (raw_windows - np.array(constants["mean"])) * np.array(constants["scale"])
    # What the header tells firmware: |FFT| per channel, bins 1..24, divided by the window length.
    expected = np.abs(np.fft.rfft(normalized, axis=1))[:, 1:25, :] / window
    np.testing.assert_allclose(_transform(summary, config, raw_windows).reshape(expected.shape), expected,
                               rtol=1e-3, atol=1e-4)


def test_a_motion_device_refuses_a_release_normalized_otherwise(motion_run, tmp_path):
    from components.ota import channels, oci_layout, releases
    from tests.unit.test_cli import invoke

    config, summary = motion_run
    store = oci_layout.OciLayout(os.path.join(config.release.registry, config.repository), repository=config.repository)
    with open(config.release.signing_key_file, "rb") as f:
        channels.promote(store, config.target_device, actor="test", private_key=f.read())  # signed, as the CLI does
    annotations = store.get_manifest(store.resolve(summary.release["pushed_version"])["digest"])["annotations"]
    common = ["--registry", config.release.registry, "--repository", config.repository,
              "--workdir", str(tmp_path / "w"), "--device-class", config.target_device,
              "--public-key", config.release.signing_key_file + ".pub"]
    refused = invoke("pull", *common, "--normalization-hash", "0" * 64, "--output", str(tmp_path / "old"))
    assert refused.exit_code == 1 and "normalization.h" in refused.output and not (tmp_path / "old").exists()
    taken = invoke("pull", *common, "--normalization-hash", annotations[releases.NORMALIZATION_ANNOTATION],
                   "--output", str(tmp_path / "new"))
    assert taken.exit_code == 0, taken.output
    assert (tmp_path / "new" / "normalization.h").exists()


def test_a_curated_schema_for_another_window_is_refused_before_the_run(motion_data, tmp_path):
    config = _tiny_motion_config(motion_data, str(tmp_path / "w"), "motion-window", window_ms=1000)
    with pytest.raises(config_lib.ConfigError, match="cuts windows of 100 samples.*data.schema: null"):
        run_local.check_config(config)
    inferred = dataclasses.replace(config, data=dataclasses.replace(config.data, schema=""))
    run_local.check_config(inferred)  # SchemaGen will infer one: nothing to compare


def test_motion_reads_a_window_of_spans(motion_data, tmp_path):
    """Span-based input works for motion too: the ExampleGen reads the newest two span folders, records
    them in ML Metadata, and each example's source names its span."""
    import shutil

    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from components.ingestion import SPANS_READ_PROPERTY

    data = tmp_path / "spans"
    for span in (0, 1, 2):
        shutil.copytree(motion_data, data / f"span-{span}")
    config = _tiny_motion_config(str(data), str(tmp_path / "work"), "motion-spans")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, training_spans=2))
    summary = run_local.run(config, until=MOTION_EXAMPLE_GEN)
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    store = metadata_store.MetadataStore(connection)
    uri = summary.artifact_uris[MOTION_EXAMPLE_GEN]["examples"]
    artifact = store.get_artifacts_by_uri(uri)[0]
    assert artifact.custom_properties[SPANS_READ_PROPERTY].string_value == "1,2"
    assert artifact.custom_properties["span"].int_value == 2
    files = glob.glob(os.path.join(uri, "Split-train", "*"))
    spec = {"source": tf.io.FixedLenFeature([], tf.string)}
    sources = [s.decode() for batch in tfrecords.record_dataset(files).batch(256).map(
        lambda b: tf.io.parse_example(b, spec)) for s in batch["source"].numpy()]
    assert {s.split("/", 1)[0] for s in sources} == {"span-1", "span-2"}
    with open(summary.ingestion_report) as f:
        report = json.load(f)
    assert any(s["file"].startswith("span-2/") for s in report["skipped"])   # the planted bad files, per span
