"""Interoperability: Debian's cosign (the sigstore tool, 2.5 in Debian 13) verifies our releases.

A release pushed by tinyml-tfx to the real docker-registry on loopback, signed with an
encrypted key made like `tinyml-tfx keys generate` makes it, is checked by
`cosign verify --key <public key>`, which reads the signature from the registry the way it
reads its own (the `sha256-<digest>.sig` tag) and checks the simple-signing payload.
No transparency log is reachable here, so it is told to skip that (a key-based signature
needs none).
"""

import base64
import json
import os
import subprocess

import pytest

from components.ota import http_registry, publish, releases, signing
from tests.helpers import reference_registry
from tests.support import tools

USER, PASSWORD = "cosign", "cosign-pass"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with reference_registry(str(tmp_path_factory.mktemp("cosign-registry")), USER, PASSWORD) as url:
        yield url


def _cosign_verify(cosign, reference, public_key, home):
    docker_config = home / "docker"
    docker_config.mkdir(exist_ok=True)
    registry_host = reference.split("/")[0]
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {registry_host: {"auth": auth}}}))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "DOCKER_CONFIG": str(docker_config),
           "TUF_ROOT": str(home / "tuf"), "SIGSTORE_NO_CACHE": "1"}
    return subprocess.run([cosign, "verify", "--key", str(public_key), "--insecure-ignore-tlog=true",
                           "--allow-http-registry", reference], capture_output=True, text=True, env=env, timeout=120)


def test_cosign_verify_accepts_a_release_signed_with_an_encrypted_key(registry, tmp_path):
    cosign = tools.require_tool("cosign", tools.COSIGN)
    key_file = str(tmp_path / "release.key")
    public_path = publish.write_key_pair(key_file, b"release passphrase")
    key = publish.load_signing_key(key_file, registry, {"COSIGN_PASSWORD": "release passphrase"})
    store = http_registry.HttpRegistry(registry, "kws/cosign", USER, PASSWORD)
    release = publish.publish(store, {"model.tflite": b"\x1cTFL3 for cosign"}, {releases.TARGETS_ANNOTATION: "pico"},
                              "kws/cosign", key, False, "canary", actor="ci")
    host = registry.split("://", 1)[1]
    # The repository our signatures name is the bare repository, as `tinyml-tfx` verifies it; cosign
    # checks the digest, and the identity only when asked to.
    verified = _cosign_verify(cosign, f"{host}/kws/cosign@{release.digest}", public_path, tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "signatures were verified against the specified public key" in verified.stderr
    (claim,) = json.loads(verified.stdout)
    assert claim["critical"]["image"]["docker-manifest-digest"] == release.digest
    assert claim["critical"]["type"] == signing.PAYLOAD_TYPE

    _, other_public = signing.generate_key_pair()
    (tmp_path / "other.pub").write_bytes(other_public)
    refused = _cosign_verify(cosign, f"{host}/kws/cosign@{release.digest}", tmp_path / "other.pub", tmp_path)
    assert refused.returncode != 0 and "no matching signatures" in refused.stderr.lower()
