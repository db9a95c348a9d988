"""The fleet simulator's users: a correct detection is confirmed with ``confirm_rate``, a false accept with
``false_confirm_rate``, drawn per device-day without changing the rest of the simulated fleet."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from components.errors import PipelineInputError
from components.streaming_evaluator import metrics
from pipeline import fleet

LABELS = ("_silence_", "_unknown_", "yes", "no")
CHANNELS = ("c0", "c1")


def _pool(correct_flags):
    """A 100-s stream with one detection per second, 'yes' when correct and 'no' when a false accept."""
    n = len(correct_flags)
    return [fleet.PoolStream(
        name="s", samples=np.zeros(16000 * 100, np.int16), sample_rate=16000,
        frames=np.zeros((n, 2), np.int8), frame_end_ms=np.arange(n) * 1000.0 + 500,
        window_ms=np.arange(n) * 1000.0 + 500, scores=np.zeros((n, 4), np.int8),
        detections=[(1000 * i + 500, 2 if ok else 3, 100, ok) for i, ok in enumerate(correct_flags)],
        events=(metrics.Event("yes", 0, 600),))]


def _day(pool, spec, device):
    return fleet.device_day(pool, np.random.default_rng([7, device]), spec, LABELS, CHANNELS, f"dev-{device}",
                            "nano33ble_sense", 0)


def test_correct_detections_are_confirmed_and_false_accepts_are_not_at_the_extremes():
    pool = _pool([True] * 30 + [False] * 70)
    spec = fleet.FleetSpec(seconds_per_day=100.0, pool_minutes=100 / 60, samples_per_device_day=0,
                           confirm_rate=1.0, false_confirm_rate=0.0)
    record, _, _ = _day(pool, spec, 0)
    assert record["detections"] == {"yes": 30, "no": 70}
    assert record["confirmed"] == {"yes": 30}


def test_confirmations_follow_the_rates_and_leave_the_other_draws_alone():
    pool = _pool([True] * 40 + [False] * 60)
    spec = fleet.FleetSpec(seconds_per_day=100.0, pool_minutes=100 / 60, samples_per_device_day=1,
                           confirm_rate=0.8, false_confirm_rate=0.1)
    days = [_day(pool, spec, d) for d in range(50)]
    confirmed_yes = sum(r["confirmed"].get("yes", 0) for r, _, _ in days)
    confirmed_no = sum(r["confirmed"].get("no", 0) for r, _, _ in days)
    assert abs(confirmed_yes / (50 * 40) - 0.8) < 0.05 and abs(confirmed_no / (50 * 60) - 0.1) < 0.03
    assert len({tuple(sorted(r["confirmed"].items())) for r, _, _ in days}) > 1   # each device-day draws its own
    # the confirmations draw from their own stream: where a device listens and which windows it samples
    # are those of a fleet without any detection to confirm
    silent = [dataclasses.replace(stream, detections=[]) for stream in pool]

    def samples(events):
        return [e for e in events if e["type"] == "sample"]

    assert all(samples(days[d][1]) == samples(_day(silent, spec, d)[1]) for d in range(5))
    assert len(samples(days[0][1])) == 1


def test_a_rate_outside_zero_to_one_is_refused_naming_the_field():
    with pytest.raises(PipelineInputError, match="false_confirm_rate is a probability"):
        fleet.FleetSpec(false_confirm_rate=1.5).check(("rain",))
