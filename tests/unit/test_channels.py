"""Channels per device class: pushes, promote and rollback, each move recorded in a signed history."""

import json

import pytest

from components.ota import channels, oci_layout, publish, releases, signing

REPO = "local/kws"


def _files(n):
    return {"model.tflite": b"\x1cTFL3 model %d" % n}


@pytest.fixture()
def store(tmp_path):
    return oci_layout.OciLayout(str(tmp_path / "registry"), repository=REPO)


@pytest.fixture(scope="module")
def keys():
    return signing.generate_key_pair()


@pytest.fixture(scope="module")
def key(keys):
    return keys[0]


def _push(store, key, n, targets="nano33ble_sense,pico"):
    return publish.publish(store, _files(n), {releases.TARGETS_ANNOTATION: targets}, REPO, key, False,
                           "canary", actor="ci")


def test_a_push_puts_the_release_on_canary_for_each_gated_device_class(store, key):
    release = _push(store, key, 1)
    for device_class in ("nano33ble_sense", "pico"):
        assert channels.current_version(store, device_class, "canary") == release.version == "0.1.0"
        (move,) = channels.history(store, device_class, "canary")
        assert (move.action, move.version, move.previous, move.who) == ("push", "0.1.0", None, "ci")
        assert move.digest == release.digest
    assert channels.current_version(store, "nano33ble_sense", "stable") is None


def test_promote_and_rollback_move_stable_and_record_who_when_from_to(store, key):
    for n in range(3):
        _push(store, key, n)
        channels.promote(store, "nano33ble_sense", actor="alice", private_key=key)
    assert channels.current_version(store, "nano33ble_sense", "stable") == "0.1.2"
    back = channels.rollback(store, "nano33ble_sense", actor="bob", private_key=key)
    assert (back.action, back.version, back.previous, back.who) == ("rollback", "0.1.1", "0.1.2", "bob")
    assert back.digest == store.resolve("0.1.1")["digest"] and back.previous_digest == store.resolve("0.1.2")["digest"]
    assert channels.current_version(store, "nano33ble_sense", "stable") == "0.1.1"
    assert channels.rollback(store, "nano33ble_sense", private_key=key).version == "0.1.0"  # two rollbacks go two back
    with pytest.raises(channels.ChannelError, match="no earlier version"):
        channels.rollback(store, "nano33ble_sense", private_key=key)
    moves = channels.history(store, "nano33ble_sense", "stable")
    assert [(m.action, m.version) for m in moves] == [
        ("promote from canary", "0.1.0"), ("promote from canary", "0.1.1"), ("promote from canary", "0.1.2"),
        ("rollback", "0.1.1"), ("rollback", "0.1.0")]
    assert all(m.when.endswith("+00:00") for m in moves)
    # The version tags never moved: channels are separate tags.
    assert store.resolve("0.1.2")["digest"] != store.resolve("nano33ble_sense-stable")["digest"]


def test_the_history_is_a_signed_dsse_envelope_naming_its_channel_and_repository(store, keys):
    private, public = keys
    _push(store, private, 1)
    channels.promote(store, "pico", private_key=private)
    recorded = channels.read_history(store, "pico", "stable", REPO, public)
    assert recorded.signed and [m.version for m in recorded.moves] == ["0.1.0"]
    layer = store.get_manifest(store.resolve("pico-stable.history")["digest"])["layers"][0]
    assert layer["mediaType"] == signing.DSSE_MEDIA_TYPE
    envelope = json.loads(store.get_blob(layer["digest"]))
    document = json.loads(signing.dsse_payload(envelope, channels.HISTORY_PAYLOAD_TYPE, public))
    assert (document["schema"], document["repository"], document["channel"]) == (
        channels.HISTORY_SCHEMA, REPO, "pico-stable")
    with pytest.raises(channels.ChannelError, match="another key"):
        channels.read_history(store, "pico", "stable", REPO, signing.generate_key_pair()[1])
    with pytest.raises(channels.ChannelError, match="not for pico-stable of other/repo"):
        channels.read_history(store, "pico", "stable", "other/repo", public)


def test_a_writer_never_extends_a_history_it_did_not_sign(store, keys):
    private, _ = keys
    _push(store, private, 1)
    _push(store, private, 2)
    intruder = signing.generate_key_pair()[0]
    with pytest.raises(channels.ChannelError, match="history of channel pico-canary .* does not verify"):
        channels.promote(store, "pico", source="canary", target="canary", version="0.1.0", private_key=intruder)


def test_promoting_an_older_version_is_refused_in_favour_of_rollback(store, key):
    for n in range(2):
        _push(store, key, n)
    channels.promote(store, "pico", version="0.1.1", private_key=key)
    with pytest.raises(channels.ChannelError, match="0.1.0 is older.*tinyml-tfx rollback"):
        channels.promote(store, "pico", version="0.1.0", private_key=key)
    with pytest.raises(channels.ChannelError, match="already points at 0.1.1"):
        channels.promote(store, "pico", private_key=key)


def test_rollback_records_authorize_exactly_the_downgrades_they_made():
    def move(action, version, previous):
        return channels.Move(action, version, previous, "ci", "now")

    moves = [move("push", "0.1.0", None), move("push", "0.1.1", "0.1.0"), move("push", "0.1.2", "0.1.1"),
             move("rollback", "0.1.1", "0.1.2"), move("rollback", "0.1.0", "0.1.1")]
    assert channels.rollback_allows(moves, "0.1.2", "0.1.0")  # a device that missed the first rollback
    assert channels.rollback_allows(moves, "0.1.1", "0.1.0")
    assert not channels.rollback_allows(moves, "0.1.3", "0.1.0")  # never rolled back from 0.1.3
    assert not channels.rollback_allows(moves, "0.1.2", "0.1.1")  # not where the channel went
    assert not channels.rollback_allows(moves[:3], "0.1.2", "0.1.1")  # no rollback record at all
    assert not channels.rollback_allows(moves + [move("push", "0.1.0", "0.1.0")], "0.1.2", "0.1.0")


def test_a_device_class_only_takes_releases_gated_for_it(store, key):
    _push(store, key, 1, targets="pico")
    with pytest.raises(channels.ChannelError, match="gated for pico, not for nano33ble_sense"):
        channels.set_channel(store, "nano33ble_sense", "stable", "0.1.0", private_key=key)
    with pytest.raises(channels.ChannelError, match="No release 9.9.9.*0.1.0"):
        channels.set_channel(store, "pico", "stable", "9.9.9", private_key=key)
    with pytest.raises(channels.ChannelError, match="not a valid name"):
        channels.channel_tag("Nano 33", "stable")


def test_the_same_model_is_not_released_twice(store, key):
    first = _push(store, key, 1)
    again = _push(store, key, 1)
    assert again.version == first.version == "0.1.0" and again.digest == first.digest
    assert len(channels.history(store, "pico", "canary")) == 1


def test_list_shows_versions_with_annotations_and_channels_with_their_recorded_state(store, key):
    _push(store, key, 1)
    _push(store, key, 2)
    channels.promote(store, "pico", version="0.1.0", private_key=key)
    store.tag("nano33ble_sense-canary", store.resolve("0.1.0"))  # moved by hand, outside the tool
    listing = channels.list_releases(store)
    assert [v["version"] for v in listing["versions"]] == ["0.1.0", "0.1.1"]
    assert listing["versions"][0]["annotations"][releases.TARGETS_ANNOTATION] == "nano33ble_sense,pico"
    assert {tag: c["version"] for tag, c in listing["channels"].items()} == {
        "nano33ble_sense-canary": "0.1.0", "pico-canary": "0.1.1", "pico-stable": "0.1.0"}
    assert listing["channels"]["pico-stable"]["state"] == "recorded, signed"
    assert listing["channels"]["nano33ble_sense-canary"]["state"].startswith("MOVED OUTSIDE tinyml-tfx")
