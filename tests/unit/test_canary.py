"""The canary gate's judgement (components/telemetry/canary.py) on summaries made by the device's summary code:
confirmed commands when the devices report confirmations, all detections otherwise."""

from __future__ import annotations

from components.telemetry import canary
from tests.support.telemetry import device_records

LABELS = ("_silence_", "_unknown_", "yes", "no", "up")
CHANNELS = ("c0", "c1")


def _fleet(stable_detections, stable_share, canary_detections, canary_share, periods=3):
    """Stable 0.1.0 on 12 devices, the canary 0.1.1 on 4, the same audio profile."""
    out = []
    for period in range(periods):
        out += device_records(LABELS, CHANNELS, 12, period, seed=1, model_version="0.1.0",
                              max_detections=stable_detections, confirmed_share=stable_share)
        canary_devices = device_records(LABELS, CHANNELS, 4, period, seed=2, model_version="0.1.1",
                                        max_detections=canary_detections, confirmed_share=canary_share)
        for record in canary_devices:
            record["device_id"] = "canary-" + record["device_id"]
        out += canary_devices
    return out


def _judge(summaries, max_rate_drop=0.2, max_share_drop=0.1):
    return canary.judge(summaries, "0.1.1", "0.1.0", 3, max_rate_drop, 0.15, max_share_drop)


def test_a_stable_model_firing_on_noise_does_not_make_a_good_canary_look_worse():
    # stable detects 3 per device-period and a third of them are confirmed (the rest false accepts);
    # the canary detects 1, confirmed: the same confirmed commands, far fewer detections
    verdict = _judge(_fleet(3, 1 / 3, 1, 1.0))
    assert verdict.allowed, verdict.reasons
    assert verdict.basis == "confirmed"
    assert verdict.canary.confirmed_per_hour == verdict.stable.confirmed_per_hour > 0
    assert verdict.canary.detections_per_hour < 0.5 * verdict.stable.detections_per_hour
    assert verdict.canary.confirmed_share == 1.0 and abs(verdict.stable.confirmed_share - 1 / 3) < 0.01
    assert "confirmed commands per device-hour" in verdict.rates()


def test_without_confirmations_the_gate_counts_detections_and_says_so():
    verdict = _judge(_fleet(3, None, 1, None))
    assert not verdict.allowed and verdict.basis == "detections"
    assert "fewer" in verdict.reasons[0] and "false accepts included" in verdict.reasons[0]
    assert "confirmations reported for 0% of the canary's and 0% of stable's" in verdict.notes[0]
    # one version's devices without confirmations: the figures are not comparable, detections are used
    mixed = _judge(_fleet(3, 1 / 3, 1, None))
    assert mixed.basis == "detections" and not mixed.allowed and mixed.canary.confirmed_per_hour is None
    assert "0% of the canary's and 100% of stable's" in mixed.notes[0]


def test_a_few_summaries_without_confirmations_do_not_switch_the_gate_back_to_detections():
    # a stray old-firmware stable device (or a forged record) in the window of the firing-on-noise case
    summaries = _fleet(3, 1 / 3, 1, 1.0)
    old_firmware = device_records(LABELS, CHANNELS, 1, 2, seed=5, model_version="0.1.0", max_detections=3,
                                  confirmed_share=None)
    old_firmware[0]["device_id"] = "old-0"
    verdict = _judge(summaries + old_firmware)
    assert verdict.allowed and verdict.basis == "confirmed", verdict.notes
    assert 0.95 < verdict.stable.confirmed_coverage < 1.0 and verdict.canary.confirmed_coverage == 1.0


def test_a_stable_model_gone_silent_leaves_the_share_uncompared_and_says_so():
    # stable detects nothing (a new noise silenced it); the canary's few detections are all confirmed
    verdict = _judge(_fleet(0, 1.0, 1, 1.0))
    assert verdict.allowed and verdict.basis == "confirmed" and verdict.stable.confirmed_share is None
    assert "share of detections confirmed is not compared" in verdict.notes[0] and "0 on stable" in verdict.notes[0]


def test_a_canary_missing_confirmed_commands_is_refused():
    verdict = _judge(_fleet(3, 1.0, 1, 1.0))
    assert not verdict.allowed and verdict.basis == "confirmed"
    assert "confirmed commands per device-hour" in verdict.reasons[0] and "fewer" in verdict.reasons[0]


def test_a_canary_whose_detections_are_less_often_confirmed_is_refused():
    # the same detections; two thirds of the canary's confirmed against all of stable's. With a loose rate
    # limit only the share rule speaks
    verdict = _judge(_fleet(3, 1.0, 3, 2 / 3), max_rate_drop=0.5)
    assert not verdict.allowed and len(verdict.reasons) == 1
    assert "confirm 67% of its detections against 100%" in verdict.reasons[0]
    assert _judge(_fleet(3, 1.0, 3, 2 / 3), max_rate_drop=0.5, max_share_drop=0.4).allowed
