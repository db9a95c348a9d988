"""The fleet simulator on the released tiny model (TFLite Micro), end to end through the CLI: telemetry per
day, a rain shift from day 1, ingested as spans, the monitoring pipeline deciding on each day."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from components.telemetry import records
from pipeline import fleet, monitoring
from pipeline.ui.cli import main
from tests.helpers import write_config_yaml

DEVICES, DAYS, SHIFT_DAY = 60, 3, 1


@pytest.fixture(scope="module")
def simulated(tiny_pipeline_runs, tmp_path_factory):
    config, _ = tiny_pipeline_runs
    tmp = tmp_path_factory.mktemp("fleet")
    path = write_config_yaml(config, str(tmp / "tiny.yaml"))
    runner = CliRunner()
    args = ["fleet", "simulate", "--config", path, "--workdir", config.workdir, "--devices", str(DEVICES),
            "--pool-minutes", "0.5", "--seconds-per-day", "20", "--seed", "3"]
    first = runner.invoke(main, [*args, "--out", str(tmp / "a"), "--days", str(DAYS), "--shift", "rain",
                                 "--shift-day", str(SHIFT_DAY), "--reference-days", "3"])
    assert first.exit_code == 0, first.output
    # the same seed without the shift: the days before the shift are the same fleet, byte for byte
    again = runner.invoke(main, [*args, "--out", str(tmp / "b"), "--days", "1", "--reference-days", "0"])
    assert again.exit_code == 0, again.output
    return config, path, tmp, runner


def _lines(folder):
    with open(os.path.join(folder, "telemetry.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_telemetry_is_valid_deterministic_and_shifts_on_the_shift_day(simulated):
    config, _, tmp, _ = simulated
    expect = monitoring.expectations(config)
    days = [_lines(str(tmp / "a" / f"day-{d:03d}")) for d in range(DAYS)]
    for rows in days:
        assert all(records.check_record(r, expect) is None for r in rows)
        assert sum(r["type"] == "summary" for r in rows) == DEVICES
        # the simulated application reports confirmations (check_record holds them to the detections)
        assert all("confirmed" in r for r in rows if r["type"] == "summary")
    with open(tmp / "a" / "day-000" / "telemetry.jsonl", "rb") as a, open(tmp / "b" / "day-000" / "telemetry.jsonl",
                                                                          "rb") as b:
        assert a.read() == b.read()                      # the same seed, the same fleet
    upper = slice(len(expect.channels) * 3 // 4, None)   # rain is high-passed above 2.5 kHz

    def level(rows):
        return np.mean([np.mean(r["feature_mean"][upper]) for r in rows if r["type"] == "summary"])

    before, after = level(days[0]), min(level(days[1]), level(days[2]))
    assert after > before + 5, (before, after)
    samples = [r for rows in days for r in rows if r["type"] == "sample"]
    assert samples and all(r["label_source"] == fleet.GROUND_TRUTH and r["label"] in expect.labels for r in samples)
    assert all(os.path.getsize(tmp / "a" / f"day-{r['period']:03d}" / "samples" / r["file"]) > 32000
               for r in samples)


def test_monitoring_the_simulated_fleet_retrains_after_the_shift_only(simulated):
    config, path, tmp, runner = simulated
    work = str(tmp / "work")

    def invoke(*args):
        out = runner.invoke(main, [*args, "--config", path, "--workdir", work])
        assert out.exit_code == 0, out.output
        return out.output

    invoke("telemetry", "ingest", str(tmp / "a" / "reference"), "--reference")
    verdicts = []
    for day in range(DAYS):
        invoke("telemetry", "ingest", str(tmp / "a" / f"day-{day:03d}"))
        verdicts.append("RETRAIN" in invoke("monitor"))
    assert verdicts == [False, True, True]
    from pipeline import config as config_lib
    decision = monitoring.latest_decision(config_lib.load_config(path).with_workdir(work))
    assert any(f.startswith("mean_filterbank_") for f in decision["drifting_features"]), decision["reason"]
