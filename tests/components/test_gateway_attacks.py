"""Issue 16's attacks on a fleet's OTA channel, each tried against the real docker-registry on loopback
and against the embedded layout store: every one is refused with one paragraph naming what was
wrong, and leaves the gateway's output folder and state file exactly as they were.

The attacker here can write to the registry (tags, manifests, blobs) but does not hold the
release key; where an attack needs a validly signed artifact, it reuses one the release
manager made (an older release or history).
"""

import base64
import json
import os
import threading
import uuid

import pytest

from components.ota import channels, gateway, http_registry, oci_layout, publish, releases, signing
from tests.helpers import non_loopback_address, reference_registry

USER, PASSWORD = "gateway", "gateway-pass"
FRONTEND = "f" * 64


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("attack-registry"))
    with reference_registry(workdir, USER, PASSWORD) as url:
        yield url, workdir


@pytest.fixture(scope="module")
def keys():
    return signing.generate_key_pair()


@pytest.fixture(params=["registry", "layout"])
def store(request, tmp_path, registry_server):
    repository = f"fleet/{uuid.uuid4().hex[:8]}"
    if request.param == "registry":
        return http_registry.HttpRegistry(registry_server[0], repository, USER, PASSWORD)
    return oci_layout.OciLayout(str(tmp_path / "registry" / repository), repository=repository)


def _release(store, key, n, targets="nano33ble_sense,pico", frontend=FRONTEND):
    model = b"\x1cTFL3 model %d " % n + os.urandom(2000)
    annotations = {releases.TARGETS_ANNOTATION: targets, releases.FRONTEND_ANNOTATION: frontend}
    return publish.publish(store, {"model.tflite": model, "model_data.h": b"// shared header\n"}, annotations,
                           store.repository, key, False, "canary", actor="ci")


def _snapshot(folder):
    """Every file under ``folder`` with its bytes (None when the folder does not exist)."""
    if not os.path.exists(folder):
        return None
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, names in os.walk(folder) for f in names}


def _pull(store, public, out, current_version=None, frontend=None, device_class="pico"):
    device = gateway.Device(device_class, "stable", {releases.FRONTEND_ANNOTATION: frontend} if frontend else {},
                            current_version)
    return gateway.pull(store, store.repository, device, str(out), public)


def _refused(store, public, out, match, **kwargs):
    """Asserts a pull is refused with one paragraph matching ``match`` and changes nothing on the device."""
    before = _snapshot(str(out))
    with pytest.raises(releases.ReleaseError, match=match) as err:
        _pull(store, public, out, **kwargs)
    assert "\n" not in str(err.value)
    assert _snapshot(str(out)) == before
    return str(err.value)


def _installed_device(store, keys, out, releases_count=2):
    """``releases_count`` releases promoted in turn to pico-stable; the device pulled the last one."""
    private, public = keys
    for n in range(releases_count):
        _release(store, private, n)
        channels.promote(store, "pico", private_key=private)
    installed = _pull(store, public, out)
    assert installed.version == f"0.1.{releases_count - 1}"
    return installed


def _forge(store, key, names):
    """A release signed with the real key whose layers carry ``names`` (a build step gone wrong, or
    an insider): the gateway must check names itself, not trust that pushes did."""
    layers = [store.put_blob(b"content of %d" % i, "application/octet-stream", {oci_layout.TITLE: name})
              for i, name in enumerate(names)]
    model = store.put_blob(b"\x1cTFL3 forged", "application/vnd.tinyml-tfx.tflite", {oci_layout.TITLE: "model.tflite"})
    annotations = {releases.TARGETS_ANNOTATION: "pico", releases.VERSION_ANNOTATION: "0.2.0",
                   releases.MODEL_SHA256_ANNOTATION: model["digest"].split(":")[1]}
    manifest = store.put_manifest(oci_layout.release_manifest([model] + layers, releases.ARTIFACT_TYPE, annotations,
                                                              store))
    payload, signature = signing.sign(key, store.repository, manifest["digest"])
    layer = store.put_blob(payload, signing.PAYLOAD_MEDIA_TYPE, {signing.SIGNATURE_ANNOTATION: signature})
    store.tag(signing.signature_tag(manifest["digest"]),
              store.put_manifest(oci_layout.release_manifest([layer], signing.PAYLOAD_MEDIA_TYPE, {}, store)))
    store.tag("0.2.0", manifest)
    channels.set_channel(store, "pico", "stable", "0.2.0", private_key=key)


@pytest.mark.parametrize("name", ["../../escaped.txt", "/tmp/tinyml-tfx-absolute.txt"])
def test_a_file_name_that_leaves_the_output_folder_is_refused(store, keys, tmp_path, name):
    private, public = keys
    _forge(store, private, [name])
    for key in (public, None):  # --no-verify does not lift the check
        message = _refused(store, key, tmp_path / "device" / "out", "not a plain file name")
        assert repr(name) in message
    assert not (tmp_path / "escaped.txt").exists() and not os.path.exists("/tmp/tinyml-tfx-absolute.txt")


def test_a_release_gated_for_another_board_is_refused(store, keys, tmp_path):
    private, public = keys
    release = _release(store, private, 1, targets="pico")
    store.tag("nano33ble_sense-stable", store.resolve(release.version))  # re-tagged by hand
    _refused(store, public, tmp_path / "out", "gated for pico, not for nano33ble_sense", device_class="nano33ble_sense")


def test_a_channel_moved_by_hand_is_refused(store, keys, tmp_path):
    private, public = keys
    _release(store, private, 0)
    _release(store, private, 1)
    channels.promote(store, "pico", private_key=private)  # stable -> 0.1.1, recorded and signed
    store.tag("pico-stable", store.resolve("0.1.0"))  # someone with registry write access moves it
    _refused(store, public, tmp_path / "fresh-device", "moved outside tinyml-tfx")


def test_a_re_tagged_older_release_with_its_old_history_is_refused(store, keys, tmp_path):
    private, public = keys
    _release(store, private, 0)
    channels.promote(store, "pico", private_key=private)
    old_history = store.resolve("pico-stable.history")
    _release(store, private, 1)
    channels.promote(store, "pico", private_key=private)
    out = tmp_path / "out"
    assert _pull(store, public, out).version == "0.1.1"
    # The attacker puts back the older, validly signed pair: tag and history agree again.
    store.tag("pico-stable.history", old_history)
    store.tag("pico-stable", store.resolve("0.1.0"))
    _refused(store, public, out, "fewer than the 2 this gateway has already seen.*replay")
    # A gateway without that memory, told the version its device runs, still refuses the downgrade.
    _refused(store, public, tmp_path / "other-device", "older than the 0.1.1 this device runs.*no signed rollback "
             "record", current_version="0.1.1")


def test_a_rollback_made_with_the_tool_is_taken_and_recorded(store, keys, tmp_path):
    private, public = keys
    out = tmp_path / "out"
    _installed_device(store, keys, out)
    channels.rollback(store, "pico", private_key=private)
    installed = _pull(store, public, out)
    assert installed.version == "0.1.0"
    state = json.loads((out / gateway.STATE_FILE).read_text())
    assert (state["version"], state["digest"], state["history"]) == ("0.1.0", installed.digest, {"pico-stable": 3})
    assert (out / "model.tflite").read_bytes() == store.get_blob(
        releases.release_files_of(store.get_manifest(installed.digest), "r")["model.tflite"]["digest"])


def test_a_promote_between_the_checks_and_the_download_does_not_change_what_is_installed(store, keys, tmp_path):
    private, public = keys
    checked = _release(store, private, 0)
    channels.promote(store, "pico", private_key=private)
    _release(store, private, 1, frontend="0" * 64)  # for another front end: this device must never get it
    fetch = store.download_blob

    def promote_then_fetch(digest, path, **kwargs):
        if channels.current_version(store, "pico", "stable") == "0.1.0":
            channels.promote(store, "pico", private_key=private)  # lands while the gateway downloads
        return fetch(digest, path, **kwargs)

    store.download_blob = promote_then_fetch
    out = tmp_path / "out"
    installed = _pull(store, public, out, frontend=FRONTEND)
    assert channels.current_version(store, "pico", "stable") == "0.1.1"  # the hook did move the channel
    assert (installed.version, installed.digest) == ("0.1.0", checked.digest)
    model_layer = releases.release_files_of(store.get_manifest(checked.digest), "r")["model.tflite"]
    assert (out / "model.tflite").read_bytes() == store.get_blob(model_layer["digest"])
    store.download_blob = fetch
    _refused(store, public, out, "built for the audio front end 0{64}, not this device's f{64}", frontend=FRONTEND)


def test_a_tampered_history_is_refused(store, keys, tmp_path):
    private, public = keys
    _release(store, private, 0)
    channels.promote(store, "pico", private_key=private)
    manifest = store.get_manifest(store.resolve("pico-stable.history")["digest"])
    envelope = json.loads(store.get_blob(manifest["layers"][0]["digest"]))
    document = json.loads(base64.b64decode(envelope["payload"]))
    document["entries"][-1]["who"] = "release-manager"  # a forged approval, say
    envelope["payload"] = base64.b64encode(json.dumps(document).encode()).decode()
    layer = store.put_blob(json.dumps(envelope).encode(), signing.DSSE_MEDIA_TYPE,
                           manifest["layers"][0]["annotations"])
    store.tag("pico-stable.history", store.put_manifest(dict(manifest, layers=[layer])))
    _refused(store, public, tmp_path / "out", "history of channel pico-stable .*does not verify.*changed after "
             "signing")


def test_an_encrypted_release_key_signs_only_with_its_passphrase(store, tmp_path):
    private, public = signing.generate_key_pair(b"release passphrase")
    (tmp_path / "release.key").write_bytes(private)
    registry = store.base_url if isinstance(store, http_registry.HttpRegistry) else os.path.dirname(store.root)
    with pytest.raises(publish.PublishError, match="could not be decrypted: the passphrase"):
        publish.load_signing_key(str(tmp_path / "release.key"), registry, {"COSIGN_PASSWORD": "guess"})
    assert store.tags() == {}
    key = publish.load_signing_key(str(tmp_path / "release.key"), registry, {"COSIGN_PASSWORD": "release passphrase"})
    _release(store, key, 0)
    channels.promote(store, "pico", private_key=key)
    assert _pull(store, public, tmp_path / "out").version == "0.1.0"


class PausedPush:
    """Wraps a store's ``put_blob`` so a push stops after its first blob until ``resume`` (a push
    process stalled mid-way: a slow link, a debugger, SIGSTOP)."""

    def __init__(self, store):
        self.paused, self.resume = threading.Event(), threading.Event()
        upload = store.put_blob

        def put_blob(*args, **kwargs):
            descriptor = upload(*args, **kwargs)
            if not self.paused.is_set():
                self.paused.set()
                self.resume.wait(30)
            return descriptor

        store.put_blob = put_blob


def _push_in_thread(store, key, n):
    outcome = {}

    def push():
        try:
            outcome["release"] = _release(store, key, n)
        except releases.ReleaseError as err:
            outcome["error"] = err

    thread = threading.Thread(target=push)
    thread.start()
    return thread, outcome


def test_two_concurrent_pushes_to_the_layout_never_share_a_version(tmp_path, keys):
    private, public = keys
    root = str(tmp_path / "registry" / "fleet")
    first_store = oci_layout.OciLayout(root, repository="fleet")
    paused = PausedPush(first_store)
    first, first_outcome = _push_in_thread(first_store, private, 1)
    assert paused.paused.wait(10)  # the first push holds the lock, one blob written
    impatient = oci_layout.OciLayout(root, repository="fleet", lock_timeout=0.5)
    with pytest.raises(oci_layout.LayoutError, match="Another writer .* has held the lock of registry .* for more "
                                                     "than 0 s, so this push or channel move did not start"):
        _release(impatient, private, 2)
    second_store = oci_layout.OciLayout(root, repository="fleet")
    second, second_outcome = _push_in_thread(second_store, private, 2)  # waits for the lock
    paused.resume.set()
    first.join(30)
    second.join(30)
    pushed = [first_outcome["release"], second_outcome["release"]]
    assert sorted(r.version for r in pushed) == ["0.1.0", "0.1.1"]
    for release in pushed:
        assert second_store.resolve(release.version)["digest"] == release.digest
        assert releases.pull_release(second_store, release.version, "fleet", public)["model.tflite"].startswith(
            b"\x1cTFL3 model")
    assert [m.version for m in channels.history(second_store, "pico", "canary")] == \
        [r.version for r in sorted(pushed, key=lambda r: releases.version_key(r.version))]


def test_two_concurrent_pushes_to_the_registry_refuse_the_one_that_lost(registry_server, keys):
    private, public = keys
    url, _ = registry_server
    repository = f"fleet/{uuid.uuid4().hex[:8]}"
    slow_store = http_registry.HttpRegistry(url, repository, USER, PASSWORD)
    paused = PausedPush(slow_store)
    slow, slow_outcome = _push_in_thread(slow_store, private, 1)
    assert paused.paused.wait(10)  # it chose 0.1.0 and wrote one blob
    fast_store = http_registry.HttpRegistry(url, repository, USER, PASSWORD)
    fast = _release(fast_store, private, 2)
    assert fast.version == "0.1.0"
    paused.resume.set()
    slow.join(30)
    message = str(slow_outcome["error"])
    assert "Another push released version 0.1.0" in message and "nothing was overwritten" in message
    assert fast_store.resolve("0.1.0")["digest"] == fast.digest  # the winner's release is intact
    assert channels.current_version(fast_store, "pico", "canary") == "0.1.0"
    retried = _release(fast_store, private, 1)
    assert retried.version == "0.1.1"


def test_a_corrupt_blob_in_the_layout_is_replaced_by_the_next_push(tmp_path, keys):
    private, public = keys
    store = oci_layout.OciLayout(str(tmp_path / "registry" / "fleet"), repository="fleet")
    first = _release(store, private, 0)
    header = releases.release_files_of(store.get_manifest(first.digest), "r")["model_data.h"]["digest"]
    with open(os.path.join(store.root, "blobs", "sha256", header.split(":")[1]), "wb") as f:
        f.write(b"// bit rot\n")
    second = _release(store, private, 1)  # ships the same header
    for release in (first, second):
        assert releases.pull_release(store, release.version, "fleet", public)["model_data.h"] == b"// shared header\n"


def test_a_corrupt_blob_in_the_registry_stops_the_push_before_any_tag(registry_server, keys):
    private, _ = keys
    url, workdir = registry_server
    store = http_registry.HttpRegistry(url, f"fleet/{uuid.uuid4().hex[:8]}", USER, PASSWORD)
    first = _release(store, private, 0)
    header = releases.release_files_of(store.get_manifest(first.digest), "r")["model_data.h"]["digest"]
    hex_digest = header.split(":")[1]
    data = os.path.join(workdir, "data", "docker", "registry", "v2", "blobs", "sha256", hex_digest[:2], hex_digest, "data")
    with open(data, "wb") as f:
        f.write(b"// bit rot\n")
    tags_before = store.tags()
    with pytest.raises(http_registry.RegistryError, match=f"holds a corrupt copy of blob {header}.*before tagging "
                                                          "anything"):
        _release(store, private, 1)
    assert store.tags() == tags_before
    with open(data, "wb") as f:  # other tests share this server's storage
        f.write(b"// shared header\n")


def test_a_read_only_registry_refuses_a_push_in_one_paragraph(registry_server, keys, tmp_path):
    private, _ = keys
    _, workdir = registry_server
    readonly_dir = str(tmp_path / "readonly")
    os.makedirs(readonly_dir)
    os.symlink(os.path.join(workdir, "data"), os.path.join(readonly_dir, "data"))  # the same storage, read-only
    with reference_registry(readonly_dir, USER, PASSWORD, readonly=True) as url:
        store = http_registry.HttpRegistry(url, f"fleet/{uuid.uuid4().hex[:8]}", USER, PASSWORD)
        with pytest.raises(http_registry.RegistryError, match="refuses writes: it is read-only .*Nothing was tagged") \
                as err:
            _release(store, private, 0)
        assert "\n" not in str(err.value) and PASSWORD not in str(err.value)


def test_credentials_over_plain_http_off_loopback_need_insecure(keys, tmp_path):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no network interface besides loopback")
    with reference_registry(str(tmp_path / "lan-registry"), USER, PASSWORD, host=address) as url:
        with pytest.raises(http_registry.RegistryError, match=f"{url} is plain HTTP .*credentials.*--insecure "
                                                              r"\(release.insecure: true"):
            http_registry.HttpRegistry(url, "fleet/lan", USER, PASSWORD)
        environ = {publish.USERNAME_ENV: USER, publish.PASSWORD_ENV: PASSWORD}
        with pytest.raises(http_registry.RegistryError, match="--insecure"):
            publish.open_store(url, "fleet/lan", environ)
        store = publish.open_store(url, "fleet/lan", environ, insecure=True)  # the user accepted it
        assert _release(store, keys[0], 0).version == "0.1.0"
        http_registry.HttpRegistry(url, "fleet/lan")  # no credentials: nothing to protect, allowed
