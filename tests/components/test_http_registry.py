"""Releases against the real reference registry server (Debian's docker-registry), on loopback."""

import contextlib
import hashlib
import http.server
import os
import socket
import threading

import pytest
import requests

from components.ota import http_registry, releases, signing
from tests.helpers import reference_registry

USER, PASSWORD = "pusher", "s3cret-pass"
FILES = {"model.tflite": b"\x1cTFL3 tiny model" * 100, "model_data.h": b"extern const unsigned char g_model[];\n"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with reference_registry(str(tmp_path_factory.mktemp("registry")), USER, PASSWORD) as url:
        yield url


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


def test_credentials_can_come_from_mounted_secret_files(registry, tmp_path):
    from components.ota import publish

    (tmp_path / "password").write_text(PASSWORD + "\n")
    environ = {publish.USERNAME_ENV: USER, publish.PASSWORD_ENV + "_FILE": str(tmp_path / "password")}
    publish.open_store(registry, "kws/files", environ).put_blob(b"x", "application/octet-stream")  # accepted
    with pytest.raises(publish.PublishError, match="TINYML_TFX_REGISTRY_PASSWORD_FILE points at"):
        publish.open_store(registry, "kws/files", {publish.PASSWORD_ENV + "_FILE": str(tmp_path / "missing")})


def test_an_unreachable_registry_is_named(keys):
    store = http_registry.HttpRegistry("http://127.0.0.1:9", "kws/pico", USER, PASSWORD, timeout=2)
    with pytest.raises(http_registry.RegistryError, match="127.0.0.1:9 is unreachable"):
        store.tags()


def test_channels_promote_and_rollback_on_the_registry_with_credentials_from_the_environment(registry, keys):
    from components.ota import channels, publish

    private, public = keys
    environ = {publish.USERNAME_ENV: USER, publish.PASSWORD_ENV: PASSWORD}
    store = publish.open_store(registry, "kws/fleet", environ)
    for n in range(2):
        publish.publish(store, {"model.tflite": b"\x1cTFL3 %d" % n}, {releases.TARGETS_ANNOTATION: "pico"},
                        "kws/fleet", private, False, "canary", actor="ci")
        channels.promote(store, "pico", actor="alice", private_key=private)
    assert channels.current_version(store, "pico", "stable") == "0.1.1"
    channels.rollback(store, "pico", actor="bob", private_key=private)
    assert channels.current_version(store, "pico", "stable") == "0.1.0"
    assert [m.action for m in channels.history(store, "pico", "stable")][-1] == "rollback"
    assert releases.pull_release(store, "pico-stable", "kws/fleet", public)["model.tflite"] == b"\x1cTFL3 0"


def test_a_push_killed_before_its_tag_leaves_no_release_and_a_retry_succeeds(registry, keys):
    private, public = keys

    class KilledBeforeTheVersionTag(http_registry.HttpRegistry):
        def tag(self, tag, descriptor, **condition):
            if releases.is_version(tag):
                raise KeyboardInterrupt("killed")
            super().tag(tag, descriptor, **condition)

    killed = KilledBeforeTheVersionTag(registry, "kws/killed", USER, PASSWORD)
    with pytest.raises(KeyboardInterrupt):
        releases.push_release(killed, FILES, {}, "kws/killed", private_key_pem=private)
    store = http_registry.HttpRegistry(registry, "kws/killed", USER, PASSWORD)
    assert store.resolve("0.1.0") is None  # blobs, manifest and signature are there, but no release
    release = releases.push_release(store, FILES, {}, "kws/killed", private_key_pem=private)
    assert release.version == "0.1.0" and releases.pull_release(store, "0.1.0", "kws/killed", public) == FILES


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    with reference_registry(str(tmp_path_factory.mktemp("token-registry")), USER, PASSWORD,
                                    auth="token") as url:
        yield url


def test_token_auth_exchanges_the_credentials_for_scoped_bearer_tokens(token_registry, keys):
    private, public = keys
    anonymous = requests.get(token_registry + "/v2/kws/token/tags/list", timeout=5)
    challenge = http_registry.parse_bearer_challenge(anonymous.headers["WWW-Authenticate"])
    assert anonymous.status_code == 401 and challenge["scope"] == "repository:kws/token:pull"

    store = http_registry.HttpRegistry(token_registry, "kws/token", USER, PASSWORD)
    release = releases.push_release(store, FILES, {}, "kws/token", private_key_pem=private)
    assert releases.pull_release(store, release.version, "kws/token", public) == FILES

    wrong = http_registry.HttpRegistry(token_registry, "kws/token", USER, "wrong-password")
    with pytest.raises(http_registry.RegistryError) as err:
        wrong.tags()
    assert "token service" in str(err.value) and "401" in str(err.value)
    assert "wrong-password" not in str(err.value)


class CuttingProxy:
    """A TCP forwarder to the registry that drops every connection once ``budget`` response
    bytes have gone through (a gateway's link failing mid-download); counts what it forwards."""

    def __init__(self, upstream: str, budget=None):
        self.upstream_port = int(upstream.rsplit(":", 1)[1])
        self.budget = budget
        self.forwarded = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source, sink, is_response):
        try:
            while data := source.recv(4096):
                if is_response:
                    if self.budget is not None and self.forwarded + len(data) > self.budget:
                        sink.sendall(data[: max(0, self.budget - self.forwarded)])
                        self.forwarded = self.budget
                        break
                    self.forwarded += len(data)
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self):
        self._listener.close()


def test_an_interrupted_pull_resumes_where_it_stopped(registry, keys, tmp_path):
    private, public = keys
    model = os.urandom(300_000)
    files = {**FILES, "model.tflite": model}
    releases.push_release(http_registry.HttpRegistry(registry, "kws/resume", USER, PASSWORD), files, {},
                          "kws/resume", private_key_pem=private)
    download = tmp_path / "download"
    download.mkdir()

    cut = CuttingProxy(registry, budget=120_000)
    with pytest.raises(http_registry.DownloadInterrupted, match="run the same pull again"):
        releases.pull_release(http_registry.HttpRegistry(cut.url, "kws/resume", USER, PASSWORD), "0.1.0",
                              "kws/resume", public, download_dir=str(download))
    cut.close()
    (partial,) = download.glob("*.part")
    assert 50_000 < partial.stat().st_size < len(model)

    counted = CuttingProxy(registry)
    pulled = releases.pull_release(http_registry.HttpRegistry(counted.url, "kws/resume", USER, PASSWORD), "0.1.0",
                                   "kws/resume", public, download_dir=str(download))
    counted.close()
    assert pulled == files
    assert counted.forwarded < len(model) - 50_000  # only the rest of the model travelled again
    assert not list(download.glob("*.part"))


def test_a_corrupt_partial_download_is_discarded_and_refetched(registry, keys, tmp_path):
    private, public = keys
    store = http_registry.HttpRegistry(registry, "kws/corrupt-part", USER, PASSWORD)
    release = releases.push_release(store, FILES, {}, "kws/corrupt-part", private_key_pem=private)
    model_digest = next(layer["digest"] for layer in store.get_manifest(release.digest)["layers"]
                        if layer["annotations"]["org.opencontainers.image.title"] == "model.tflite")
    target = tmp_path / model_digest.replace(":", "-")
    target.with_name(target.name + ".part").write_bytes(b"garbage from another file")
    with pytest.raises(releases.ReleaseError, match="corrupt"):
        releases.pull_release(store, release.version, "kws/corrupt-part", public, download_dir=str(tmp_path))
    assert releases.pull_release(store, release.version, "kws/corrupt-part", public,
                                 download_dir=str(tmp_path)) == FILES


def test_the_gateway_pull_command_resumes_after_a_dropped_link(registry, keys, tmp_path, monkeypatch):
    from components.ota import channels, publish
    from tests.unit.test_cli import invoke

    private, public = keys
    model = os.urandom(300_000)
    store = http_registry.HttpRegistry(registry, "kws/gateway", USER, PASSWORD)
    publish.publish(store, {"model.tflite": model}, {releases.TARGETS_ANNOTATION: "pico"}, "kws/gateway",
                    private, False, "canary", actor="ci")
    channels.promote(store, "pico", actor="ci", private_key=private)
    (tmp_path / "key.pub").write_bytes(public)
    monkeypatch.setenv(publish.USERNAME_ENV, USER)
    monkeypatch.setenv(publish.PASSWORD_ENV, PASSWORD)
    out = tmp_path / "device"

    def pull(url):
        return invoke("pull", "--registry", url, "--repository", "kws/gateway", "--workdir", str(tmp_path / "w"),
                      "--device-class", "pico", "--public-key", str(tmp_path / "key.pub"), "--output", str(out))

    cut = CuttingProxy(registry, budget=120_000)
    interrupted = pull(cut.url)
    cut.close()
    assert interrupted.exit_code == 1 and "interrupted" in interrupted.output
    assert "Traceback" not in interrupted.output and not (out / "model.tflite").exists()

    resumed = pull(registry)
    assert resumed.exit_code == 0, resumed.output
    assert (out / "model.tflite").read_bytes() == model
    assert sorted(os.listdir(out)) == [".tinyml-tfx-gateway.json", "model.tflite"]  # the download folder is gone


def test_the_credentials_go_to_no_token_realm_on_another_host(tmp_path_factory):
    """The real registry, configured to announce its token service under another host name."""
    workdir = str(tmp_path_factory.mktemp("elsewhere-realm"))
    with reference_registry(workdir, USER, PASSWORD, auth="token", realm_host="localhost") as url:
        store = http_registry.HttpRegistry(url, "kws/realm", USER, PASSWORD)
        with pytest.raises(http_registry.RegistryError, match="asks for a token from http://localhost:\\d+/token, "
                                                              "which is not on the registry's own host") as err:
            store.tags()
        assert PASSWORD not in str(err.value)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """One side of a registry that hands uploads and downloads to another host (as registries
    backed by an object store do; the reference server never does, hence this small stand-in)."""

    routes: dict = {}
    seen: list = []

    def _answer(self):
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.command in ("PUT", "POST"):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, body = self.routes.get((self.command, self.path.split("?")[0]), (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


def _serve(routes):
    handler = type("Handler", (_Recorder,), {"routes": routes, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler.seen


def test_the_authorization_header_never_follows_a_redirect_to_another_host():
    blob = b"model bytes"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    store_server, store_seen = _serve({("PUT", "/upload/1"): (201, {}, b""), ("GET", "/blob"): (200, {}, blob)})
    elsewhere = f"http://localhost:{store_server.server_address[1]}"  # the same machine under another name
    registry_server, registry_seen = _serve({
        ("POST", "/v2/kws/redirect/blobs/uploads/"): (202, {"Location": f"{elsewhere}/upload/1"}, b""),
        ("GET", f"/v2/kws/redirect/blobs/{digest}"): (307, {"Location": f"{elsewhere}/blob"}, b"")})
    try:
        store = http_registry.HttpRegistry(f"http://127.0.0.1:{registry_server.server_address[1]}", "kws/redirect",
                                           USER, PASSWORD)
        store.put_blob(blob, "application/octet-stream")  # HEAD (404), POST, then PUT to the Location
        assert store.get_blob(digest) == blob  # GET, redirected
    finally:
        for server in (store_server, registry_server):
            server.shutdown()
            server.server_close()
    assert [(method, auth is not None) for method, _, auth in registry_seen] == [
        ("HEAD", True), ("POST", True), ("GET", True)]
    assert [(method, auth) for method, _, auth in store_seen] == [("PUT", None), ("GET", None)]
