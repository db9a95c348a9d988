"""The canary gate of `tinyml-tfx promote`: refused on a regressing canary, allowed on a healthy one, and
`--force` recorded in the signed channel history. Releases in the embedded OCI registry, telemetry ingested
through the CLI."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from components.ota import channels, publish, releases, signing
from components.telemetry import canary
from pipeline import config as config_lib, monitoring
from pipeline.ui.cli import main
from tests.support.telemetry import device_records, ingest_batch

BOARD = "nano33ble_sense"


@pytest.fixture()
def fleet(tmp_path):
    """stable at 0.1.0 and canary at 0.1.1 for the board, in the work directory's registry."""
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(str(tmp_path / "work"))
    private, _ = signing.generate_key_pair()
    os.makedirs(os.path.dirname(config.release.signing_key_file))
    with open(config.release.signing_key_file, "wb") as f:
        f.write(private)
    key = private
    store = publish.open_store(config.release.registry, config.repository, create=True)
    for n in range(2):
        publish.publish(store, {"model.tflite": b"\x1cTFL3 model %d" % n}, {releases.TARGETS_ANNOTATION: BOARD},
                        config.repository, key, False, "canary", actor="ci")
        if n == 0:
            channels.promote(store, BOARD, actor="ci", private_key=key)
    return config, store, tmp_path


def _ingest(config, tmp_path, name, records):
    ingest_batch(str(tmp_path / name), records, config.workdir)


def _telemetry(config, tmp_path, canary_scores, canary_detections, confirmed_share=1.0):
    expect = monitoring.expectations(config)
    for period in range(3):
        stable = device_records(expect.labels, expect.channels, 12, period, seed=1, model_version="0.1.0",
                                confirmed_share=confirmed_share)
        canary_devices = device_records(expect.labels, expect.channels, 4, period, seed=2, model_version="0.1.1",
                                        score_range=canary_scores, max_detections=canary_detections,
                                        confirmed_share=confirmed_share)
        for record in canary_devices:
            record["device_id"] = "canary-" + record["device_id"]
        _ingest(config, tmp_path, f"day{period}", stable + canary_devices)


def _promote(config, *flags):
    return CliRunner().invoke(main, ["promote", "--workdir", config.workdir, "--device-class", BOARD, *flags])


@pytest.mark.parametrize("confirmed_share", [1.0, None], ids=["confirmations", "detections only"])
def test_a_regressing_canary_is_refused_and_force_is_recorded_signed(fleet, confirmed_share):
    config, store, tmp_path = fleet
    _telemetry(config, tmp_path, canary_scores=(-100, 10), canary_detections=1, confirmed_share=confirmed_share)
    refused = _promote(config)
    text = " ".join(refused.output.split())
    assert refused.exit_code == 1 and "the canary gate refuses" in text and "fewer" in text and "lower" in text
    # the verdict says what it counted: confirmed commands, or all detections and why
    assert ("confirmed commands per device-hour" in text) == (confirmed_share is not None)
    assert ("note: confirmations reported for 0% of the canary's and 0% of stable's" in text) == (
        confirmed_share is None)
    assert channels.current_version(store, BOARD, "stable") == "0.1.0"
    forced = _promote(config, "--force")
    assert forced.exit_code == 0, forced.output
    assert channels.current_version(store, BOARD, "stable") == "0.1.1"
    history = channels.read_history(store, BOARD, "stable")
    assert history.signed and history.last.action.startswith("promote from canary (forced past the canary gate: ")
    assert "commands per device-hour" in history.last.action


def test_a_healthy_canary_is_promoted_with_the_gate_recorded(fleet):
    config, store, tmp_path = fleet
    _telemetry(config, tmp_path, canary_scores=(40, 128), canary_detections=3)
    allowed = _promote(config)
    assert allowed.exit_code == 0, allowed.output
    assert "Canary gate: passed" in allowed.output
    assert channels.current_version(store, BOARD, "stable") == "0.1.1"
    assert channels.read_history(store, BOARD, "stable").last.action.startswith("promote from canary (canary gate passed")


def test_without_canary_telemetry_the_gate_refuses():
    stable = device_records(("_silence_", "yes"), ("c",), 3, 0, seed=1, model_version="0.1.0")
    verdict = canary.judge(stable, "0.1.1", "0.1.0", 3, 0.2, 0.15)
    assert not verdict.allowed and "no field telemetry from devices running the canary 0.1.1" in verdict.reasons[0]
    assert canary.judge(stable, "0.1.0", None, 3, 0.2, 0.15).allowed   # nothing on stable yet: nothing to compare


def test_a_fleet_without_telemetry_is_not_gated_and_the_history_says_so(fleet):
    config, store, _ = fleet
    promoted = _promote(config)
    assert promoted.exit_code == 0 and "Canary gate: not applied, no field telemetry" in promoted.output
    assert channels.read_history(store, BOARD, "stable").last.action == (
        f"promote from canary (canary gate not applied: no field telemetry for {BOARD})")
