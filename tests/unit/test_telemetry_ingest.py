"""Telemetry ingestion: a batch becomes a span; malformed records are skipped and reported by file and line."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from components.telemetry import ingest, records
from pipeline import config as config_lib, monitoring
from pipeline.ui.cli import main
from tests.support.telemetry import device_records, write_batch

LABELS = ("_silence_", "_unknown_", "yes", "no")
CHANNELS = ("c0", "c1", "c2")
EXPECT = records.Expectations(LABELS, CHANNELS, ("nano33ble_sense",))


def _good(devices=3, period=0):
    return device_records(LABELS, CHANNELS, devices, period, seed=5)


def _lines_with_problems(tmp_path):
    good = _good()
    bad_class = dict(good[0], device_class="unknown_board")
    traversal = {"type": "sample", "device_id": "dev-1", "device_class": "nano33ble_sense", "model_version": "0.1.0",
                 "time": "2026-12-01T10:00:00Z", "file": "../../etc/passwd"}
    missing = dict(traversal, file="dev-1_0001.wav")
    too_big = dict(traversal, file="big.wav")
    sample = dict(traversal, file="dev-1_0002.wav", label="yes", label_source="fleet simulator ground truth")
    wrong_sum = dict(good[1], windows=good[1]["windows"] + 1)
    wrong_channels = dict(good[2], channels=["c0", "c1"])
    nan = json.dumps(good[2]).replace(str(good[2]["feature_mean"][0]), "NaN", 1)
    lines = [json.dumps(good[0]), "{not json", json.dumps(bad_class), json.dumps(traversal), json.dumps(missing),
             json.dumps(too_big), json.dumps(sample), json.dumps(wrong_sum), json.dumps(wrong_channels), nan,
             "", json.dumps([1, 2]), "x" * (records.MAX_LINE_BYTES + 10), json.dumps(good[1]), json.dumps(good[2])]
    batch = tmp_path / "batch"
    (batch / "samples").mkdir(parents=True)
    (batch / "samples" / "dev-1_0002.wav").write_bytes(b"RIFF" + b"\0" * 100)
    (batch / "samples" / "big.wav").write_bytes(b"\0" * 2048)
    (tmp_path / "secret.wav").write_bytes(b"secret")
    (batch / "a.jsonl").write_text("\n".join(lines) + "\n")
    return str(batch)


def test_malformed_records_are_skipped_with_file_line_and_reason(tmp_path):
    batch = _lines_with_problems(tmp_path)
    result = ingest.ingest(batch, str(tmp_path / "field"), EXPECT, max_sample_bytes=1024)
    assert (result.span, result.summaries, result.events, result.samples) == (1, 3, 1, 1)
    assert result.skipped == 10 and result.per_file["a.jsonl"] == {"records": 4, "skipped": 10}
    reasons = dict(p.split(": ", 1) for p in result.problems)
    assert "not a JSON object" in reasons["a.jsonl:2"]
    assert "unknown_board" in reasons["a.jsonl:3"]
    assert "field 'file'" in reasons["a.jsonl:4"]                 # the path never reaches the file system
    assert "not in the batch's samples/ folder" in reasons["a.jsonl:5"]
    assert "larger than 1024 bytes" in reasons["a.jsonl:6"]
    assert "add up to" in reasons["a.jsonl:8"] and "channels" in reasons["a.jsonl:9"]
    assert "NaN" in reasons["a.jsonl:10"] or "not a JSON object" in reasons["a.jsonl:10"]
    assert "JSON object, not list" in reasons["a.jsonl:12"] and "longer than" in reasons["a.jsonl:13"]
    span = result.span_dir
    assert sorted(os.listdir(os.path.join(span, "samples"))) == ["dev-1_0002.wav"]
    assert len(ingest.read_span(str(tmp_path / "field"), 1)) == 3
    report = json.load(open(os.path.join(span, ingest.REPORT_FILE)))
    assert report["skipped"] == 10 and len(report["digest"]) == 64


def test_the_same_batch_twice_is_refused_and_a_new_one_is_the_next_span(tmp_path):
    dataset = str(tmp_path / "field")
    first = write_batch(str(tmp_path / "b1"), _good(period=0))
    assert ingest.ingest(first, dataset, EXPECT).span == 1
    with pytest.raises(ingest.IngestError, match="already ingested as span 1"):
        ingest.ingest(first, dataset, EXPECT)
    assert ingest.ingest(write_batch(str(tmp_path / "b2"), _good(period=1)), dataset, EXPECT).span == 2
    assert ingest.spans(dataset) == [1, 2]


def test_a_batch_with_nothing_usable_is_refused_in_one_paragraph(tmp_path):
    batch = tmp_path / "bad"
    batch.mkdir()
    (batch / "x.jsonl").write_text("garbage\n{}\n")
    with pytest.raises(ingest.IngestError, match=r"holds no usable record \(2 skipped: x.jsonl:1"):
        ingest.ingest(str(batch), str(tmp_path / "field"), EXPECT)
    assert ingest.spans(str(tmp_path / "field")) == []


def test_cli_ingest_reports_skipped_lines_and_refuses_a_repeat(tmp_path):
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(str(tmp_path / "work"))
    expect = monitoring.expectations(config)
    assert len(expect.channels) == config.features.channels and expect.labels == config.data.labels
    good = device_records(expect.labels, expect.channels, 4, 0, seed=1)
    batch = write_batch(str(tmp_path / "batch"), good)
    with open(os.path.join(batch, "telemetry.jsonl"), "a") as f:
        f.write(json.dumps(dict(good[0], device_id="../../evil")) + "\n")
    runner = CliRunner()
    args = ["telemetry", "ingest", batch, "--workdir", str(tmp_path / "work")]
    out = runner.invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "Span 1 of" in out.output and "4 summary record(s)" in out.output
    assert "Skipped 1 malformed record(s)" in out.output and "telemetry.jsonl:5: summary record, field 'device_id'" \
        in out.output
    again = runner.invoke(main, args)
    assert again.exit_code == 2 and "already ingested as span 1" in " ".join(again.output.split()) and "Traceback" not in again.output


def test_a_samples_folder_that_is_a_link_is_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "dev-1_0002.wav").write_bytes(b"RIFF" + b"\0" * 100)
    batch = tmp_path / "batch"
    batch.mkdir()
    os.symlink(elsewhere, batch / "samples")
    sample = {"type": "sample", "device_id": "dev-1", "device_class": "nano33ble_sense", "model_version": "0.1.0",
              "time": "2026-12-01T10:00:00Z", "file": "dev-1_0002.wav"}
    write_batch(str(batch), _good(1) + [sample])
    result = ingest.ingest(str(batch), str(tmp_path / "field"), EXPECT)
    assert (result.samples, result.skipped) == (0, 1) and "links are not followed" in result.problems[0]


def test_hostile_lines_are_skipped_not_raised(tmp_path):
    good = _good()
    huge = dict(good[1], feature_mean=[10 ** 400] + good[1]["feature_mean"][1:])
    newline_id = dict(good[2], device_id=good[2]["device_id"] + "\n")   # passes the schema's "$" in Python's re
    lines = [json.dumps(good[0]), "[" * 20_000 + "]" * 20_000, json.dumps(huge), json.dumps(newline_id)]
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "a.jsonl").write_text("\n".join(lines) + "\n")
    (batch / "folder.jsonl").mkdir()   # a folder with a .jsonl name: reported, not opened
    result = ingest.ingest(str(batch), str(tmp_path / "field"), EXPECT)
    reasons = dict(p.split(": ", 1) for p in result.problems)
    assert result.summaries == 1 and result.skipped == 4
    assert "nested too deeply" in reasons["a.jsonl:2"]
    assert "out-of-range" in reasons["a.jsonl:3"]
    assert "control character" in reasons["a.jsonl:4"]
    assert "not a regular file" in reasons["folder.jsonl:0"]
