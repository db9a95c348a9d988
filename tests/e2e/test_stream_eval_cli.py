"""`tinyml-tfx stream-eval` on a release and a recording with its label file; `data streams`; the mistakes."""

import json
import os

from click.testing import CliRunner

from pipeline.ui import cli
from tests.helpers import write_config_yaml


def invoke(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def said(result) -> str:
    """The output with the paragraph's line breaks undone."""
    return " ".join(result.output.split())


def _pulled_release(config, folder):
    """The tiny run's release, written to ``folder`` as `tinyml-tfx pull` writes it."""
    from components.ota import oci_layout, releases

    store = oci_layout.OciLayout(os.path.join(config.release.registry, config.repository))
    public_key = open(config.release.signing_key_file + ".pub", "rb").read()
    os.makedirs(folder)
    for name, content in releases.pull_release(store, "0.1.0", config.repository, public_key).items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)
    return folder


def test_stream_eval_runs_a_release_on_a_written_stream(tiny_pipeline_runs, tmp_path):
    config, (first, _, _) = tiny_pipeline_runs
    config_file = write_config_yaml(config, str(tmp_path / "config.yaml"))
    written = invoke("data", "streams", "--config", config_file, "--out", tmp_path / "streams", "--minutes", 0.2)
    assert written.exit_code == 0, written.output
    assert sorted(os.listdir(tmp_path / "streams")) == ["STREAMS.json", "stream_00.labels.txt", "stream_00.wav"]
    release = _pulled_release(config, str(tmp_path / "release"))
    result = invoke("stream-eval", "--model", release, "--audio", tmp_path / "streams" / "stream_00.wav",
                    "--labels", tmp_path / "streams" / "stream_00.labels.txt", "--config", config_file,
                    "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    shipped = json.load(open(os.path.join(release, "streaming_report.json")))
    threshold = shipped["operating_point"]["threshold"]
    stride = shipped["settings"]["inference_stride_ms"]
    assert f"one every {stride} ms (the release's postprocessing.h)" in result.output
    assert f"At the release's threshold {threshold}:" in result.output
    written_report = json.load(open(tmp_path / "out.json"))
    assert written_report["detections"]["threshold"] == threshold
    assert written_report["composition"]["audio_seconds"] == 12.0
    keywords = sum(1 for line in open(tmp_path / "streams" / "stream_00.labels.txt")
                   if line.split("\t")[2].strip() in config.data.words)
    assert written_report["composition"]["keyword_occurrences"] == keywords > 0
    # Without labels, every detection is a false accept and there is no false-reject rate.
    unlabelled = invoke("stream-eval", "--model", release, "--audio", tmp_path / "streams" / "stream_00.wav",
                        "--config", config_file, "--threshold", 0)
    assert unlabelled.exit_code == 0 and "no keyword labelled, so no false-reject rate" in unlabelled.output


def test_stream_eval_mistakes_are_one_paragraph_and_exit_2(tiny_pipeline_runs, tmp_path):
    config, (first, _, _) = tiny_pipeline_runs
    config_file = write_config_yaml(config, str(tmp_path / "config.yaml"))
    model = os.path.join(first.quantization["uri"], "model.tflite")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    result = invoke("stream-eval", "--model", model, "--audio", not_audio, "--config", config_file, "--stride-ms", 100)
    assert result.exit_code == 2 and "notes.wav cannot be used: not a RIFF/WAVE file" in said(result)
    assert "Traceback" not in said(result)
    invoke("data", "streams", "--config", config_file, "--out", tmp_path / "s", "--minutes", 0.1)
    bad_labels = tmp_path / "bad.labels.txt"
    bad_labels.write_text("0.5\t0.4\tyes\n")
    result = invoke("stream-eval", "--model", model, "--audio", tmp_path / "s" / "stream_00.wav", "--labels",
                    bad_labels, "--config", config_file, "--stride-ms", 100)
    assert result.exit_code == 2 and "bad.labels.txt, line 1: start 0.5 and end 0.4" in said(result)
    result = invoke("stream-eval", "--model", not_audio, "--audio", tmp_path / "s" / "stream_00.wav",
                    "--config", config_file, "--stride-ms", 100)
    assert result.exit_code == 2 and "is not a TFLite flatbuffer" in said(result)
    result = invoke("stream-eval", "--model", model, "--audio", tmp_path / "s" / "stream_00.wav",
                    "--config", config_file, "--stride-ms", 110)
    assert result.exit_code == 2 and "110 ms is not a multiple of the front end's 20 ms" in said(result)
    motion = os.path.join(os.path.dirname(cli.__file__), "..", "configs", "motion.yaml")
    result = invoke("stream-eval", "--model", model, "--audio", tmp_path / "s" / "stream_00.wav", "--config", motion)
    assert result.exit_code == 2 and "task 'motion', which has no streaming evaluation" in said(result)
