"""Releases against the real reference registry server (Debian's docker-registry), on loopback."""

import shutil
import socket
import subprocess
import time

import pytest
import requests

from components.ota_pusher import http_registry, releases, signing

USER, PASSWORD = "pusher", "s3cret-pass"
FILES = {"model.tflite": b"\x1cTFL3 tiny model" * 100, "model_data.h": b"extern const unsigned char g_model[];\n"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    binary = shutil.which("docker-registry")
    if binary is None or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry/htpasswd not installed here (scripts/devenv.sh installs them in the Debian 13 root)")
    work = tmp_path_factory.mktemp("registry")
    htpasswd = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True).stdout
    (work / "htpasswd").write_text(htpasswd)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (work / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: " + str(work / "data") +
        "\nhttp:\n  addr: 127.0.0.1:" + str(port) + "\nauth:\n  htpasswd:\n    realm: test\n    path: " +
        str(work / "htpasswd") + "\n")
    server = subprocess.Popen([binary, "serve", str(work / "config.yml")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if requests.get(url + "/v2/", timeout=1).status_code == 401:
                break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("the registry server did not start")
    yield url
    server.terminate()
    server.wait(timeout=10)


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
