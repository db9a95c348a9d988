"""Channels per device class: pushes, promote and rollback, each move recorded in the registry."""

import pytest

from components.ota import channels, oci_layout, publish, releases, signing

REPO = "local/kws"


def _files(n):
    return {"model.tflite": b"\x1cTFL3 model %d" % n}


@pytest.fixture()
def store(tmp_path):
    return oci_layout.OciLayout(str(tmp_path / "registry"))


@pytest.fixture(scope="module")
def key():
    return signing.generate_key_pair()[0]


def _push(store, key, n, targets="nano33ble_sense,pico"):
    return publish.publish(store, _files(n), {releases.TARGETS_ANNOTATION: targets}, REPO, key, False,
                           "canary", actor="ci")


def test_a_push_puts_the_release_on_canary_for_each_gated_device_class(store, key):
    release = _push(store, key, 1)
    for device_class in ("nano33ble_sense", "pico"):
        assert channels.current_version(store, device_class, "canary") == release.version == "0.1.0"
        (move,) = channels.history(store, device_class, "canary")
        assert (move.action, move.version, move.previous, move.who) == ("push", "0.1.0", None, "ci")
    assert channels.current_version(store, "nano33ble_sense", "stable") is None


def test_promote_and_rollback_move_stable_and_record_who_when_from_to(store, key):
    for n in range(3):
        _push(store, key, n)
        channels.promote(store, "nano33ble_sense", actor="alice")
    assert channels.current_version(store, "nano33ble_sense", "stable") == "0.1.2"
    back = channels.rollback(store, "nano33ble_sense", actor="bob")
    assert (back.action, back.version, back.previous, back.who) == ("rollback", "0.1.1", "0.1.2", "bob")
    assert channels.current_version(store, "nano33ble_sense", "stable") == "0.1.1"
    assert channels.rollback(store, "nano33ble_sense").version == "0.1.0"  # two rollbacks go two back
    with pytest.raises(channels.ChannelError, match="no earlier version"):
        channels.rollback(store, "nano33ble_sense")
    moves = channels.history(store, "nano33ble_sense", "stable")
    assert [(m.action, m.version) for m in moves] == [
        ("promote from canary", "0.1.0"), ("promote from canary", "0.1.1"), ("promote from canary", "0.1.2"),
        ("rollback", "0.1.1"), ("rollback", "0.1.0")]
    assert all(m.when.endswith("+00:00") for m in moves)
    # The version tags never moved: channels are separate tags.
    assert store.resolve("0.1.2")["digest"] != store.resolve("nano33ble_sense-stable")["digest"]


def test_a_device_class_only_takes_releases_gated_for_it(store, key):
    _push(store, key, 1, targets="pico")
    with pytest.raises(channels.ChannelError, match="gated for pico, not for nano33ble_sense"):
        channels.set_channel(store, "nano33ble_sense", "stable", "0.1.0")
    with pytest.raises(channels.ChannelError, match="No release 9.9.9.*0.1.0"):
        channels.set_channel(store, "pico", "stable", "9.9.9")
    with pytest.raises(channels.ChannelError, match="not a valid name"):
        channels.channel_tag("Nano 33", "stable")


def test_the_same_model_is_not_released_twice(store, key):
    first = _push(store, key, 1)
    again = _push(store, key, 1)
    assert again.version == first.version == "0.1.0" and again.digest == first.digest
    assert len(channels.history(store, "pico", "canary")) == 1


def test_list_shows_versions_with_annotations_and_channels(store, key):
    _push(store, key, 1)
    _push(store, key, 2)
    channels.promote(store, "pico", version="0.1.0")
    listing = channels.list_releases(store)
    assert [v["version"] for v in listing["versions"]] == ["0.1.0", "0.1.1"]
    assert listing["versions"][0]["annotations"][releases.TARGETS_ANNOTATION] == "nano33ble_sense,pico"
    assert listing["channels"] == {"nano33ble_sense-canary": "0.1.1", "pico-canary": "0.1.1", "pico-stable": "0.1.0"}
