"""Releases against the real reference registry server (Debian's docker-registry), on loopback."""

import pytest

from components.ota_pusher import http_registry, releases, signing

USER, PASSWORD = "pusher", "s3cret-pass"
FILES = {"model.tflite": b"\x1cTFL3 tiny model" * 100, "model_data.h": b"extern const unsigned char g_model[];\n"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from components.ota_pusher import reference_registry

    try:
        with reference_registry.serve(str(tmp_path_factory.mktemp("registry")), USER, PASSWORD) as url:
            yield url
    except reference_registry.RegistryUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def keys():
    return signing.generate_key_pair()


def test_push_pull_round_trip_through_the_registry(registry, keys):
    private, public = keys
    store = http_registry.HttpRegistry(registry, "kws/nano33ble_sense", USER, PASSWORD)
    release = releases.push_release(store, FILES, {"dev.tinyml-tfx.device-class": "nano33ble_sense"},
                                    "kws/nano33ble_sense", private_key_pem=private)
    assert store.resolve(release.version)["digest"] == release.digest
    assert signing.signature_tag(release.digest) in store.tags()
    assert releases.pull_release(store, release.version, "kws/nano33ble_sense", public) == FILES
    with pytest.raises(releases.ReleaseError, match="immutable"):
        releases.push_release(store, FILES, {}, "kws/nano33ble_sense", version=release.version,
                              private_key_pem=private)
    _, other_public = signing.generate_key_pair()
    with pytest.raises(releases.ReleaseError, match="another key"):
        releases.pull_release(store, release.version, "kws/nano33ble_sense", other_public)


def test_wrong_credentials_give_a_clear_error_without_the_secret(registry):
    store = http_registry.HttpRegistry(registry, "kws/pico", USER, "wrong-password")
    with pytest.raises(http_registry.RegistryError) as err:
        store.put_blob(b"x", "application/octet-stream")
    assert "401" in str(err.value) and "credentials" in str(err.value) and "wrong-password" not in str(err.value)


def test_an_unreachable_registry_is_named(keys):
    store = http_registry.HttpRegistry("http://127.0.0.1:9", "kws/pico", USER, PASSWORD, timeout=2)
    with pytest.raises(http_registry.RegistryError, match="127.0.0.1:9 is unreachable"):
        store.tags()


def test_channels_promote_and_rollback_on_the_registry_with_credentials_from_the_environment(registry, keys):
    from components.ota_pusher import channels, publish

    private, public = keys
    environ = {publish.USERNAME_ENV: USER, publish.PASSWORD_ENV: PASSWORD}
    store = publish.open_store(registry, "kws/fleet", environ)
    for n in range(2):
        publish.publish(store, {"model.tflite": b"\x1cTFL3 %d" % n}, {releases.TARGETS_ANNOTATION: "pico"},
                        "kws/fleet", private, False, "canary", actor="ci")
        channels.promote(store, "pico", actor="alice")
    assert channels.current_version(store, "pico", "stable") == "0.1.1"
    channels.rollback(store, "pico", actor="bob")
    assert channels.current_version(store, "pico", "stable") == "0.1.0"
    assert [m.action for m in channels.history(store, "pico", "stable")][-1] == "rollback"
    assert releases.pull_release(store, "pico-stable", "kws/fleet", public)["model.tflite"] == b"\x1cTFL3 0"


def test_a_push_killed_before_its_tag_leaves_no_release_and_a_retry_succeeds(registry, keys):
    private, public = keys

    class KilledBeforeTheVersionTag(http_registry.HttpRegistry):
        def tag(self, tag, descriptor):
            if releases.is_version(tag):
                raise KeyboardInterrupt("killed")
            super().tag(tag, descriptor)

    killed = KilledBeforeTheVersionTag(registry, "kws/killed", USER, PASSWORD)
    with pytest.raises(KeyboardInterrupt):
        releases.push_release(killed, FILES, {}, "kws/killed", private_key_pem=private)
    store = http_registry.HttpRegistry(registry, "kws/killed", USER, PASSWORD)
    assert store.resolve("0.1.0") is None  # blobs, manifest and signature are there, but no release
    release = releases.push_release(store, FILES, {}, "kws/killed", private_key_pem=private)
    assert release.version == "0.1.0" and releases.pull_release(store, "0.1.0", "kws/killed", public) == FILES
