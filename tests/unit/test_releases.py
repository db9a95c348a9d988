import os

import pytest

from components.ota import oci_layout, releases, signing

REPO = "local/kws"
FILES = {"model.tflite": b"\x1cTFL3 tiny model", "model_data.h": b"extern const unsigned char g_model[];\n"}


@pytest.fixture()
def store(tmp_path):
    return oci_layout.OciLayout(str(tmp_path / "registry"))


@pytest.fixture(scope="module")
def keys():
    return signing.generate_key_pair()


def test_push_pull_round_trip_with_signature(store, keys):
    private, public = keys
    release = releases.push_release(store, FILES, {"dev.tinyml-tfx.device-class": "nano33ble_sense"}, REPO,
                                    private_key_pem=private)
    assert release.version == "0.1.0"
    assert release.annotations[releases.MODEL_BYTES_ANNOTATION] == str(len(FILES["model.tflite"]))
    assert releases.pull_release(store, "0.1.0", REPO, public) == FILES
    assert releases.push_release(store, FILES, {}, REPO, private_key_pem=private).version == "0.1.1"


def test_versions_are_immutable_and_semantic(store, keys):
    private, _ = keys
    releases.push_release(store, FILES, {}, REPO, version="1.2.3", private_key_pem=private)
    with pytest.raises(releases.ReleaseError, match="1.2.3 already exists.*immutable.*push as 1.2.4"):
        releases.push_release(store, FILES, {}, REPO, version="1.2.3", private_key_pem=private)
    with pytest.raises(releases.ReleaseError, match="not MAJOR.MINOR.PATCH"):
        releases.push_release(store, FILES, {}, REPO, version="latest", private_key_pem=private)
    assert releases.next_version(["0.9.9", "1.10.0", "1.9.7", "stable", "sha256-x.sig"]) == "1.10.1"


def test_unsigned_needs_an_explicit_flag_and_is_refused_by_a_verifying_pull(store, keys):
    _, public = keys
    with pytest.raises(releases.ReleaseError, match="--allow-unsigned"):
        releases.push_release(store, FILES, {}, REPO)
    releases.push_release(store, FILES, {}, REPO, allow_unsigned=True)
    with pytest.raises(releases.ReleaseError, match="not signed"):
        releases.pull_release(store, "0.1.0", REPO, public)


def test_wrong_key_and_tampered_model_are_refused(store, keys):
    private, _ = keys
    release = releases.push_release(store, FILES, {}, REPO, private_key_pem=private)
    _, other_public = signing.generate_key_pair()
    with pytest.raises(releases.ReleaseError, match="failed signature verification.*another key"):
        releases.pull_release(store, release.version, REPO, other_public)
    layer = next(l for l in store.get_manifest(release.digest)["layers"]
                 if l["annotations"][oci_layout.TITLE] == "model.tflite")
    with open(os.path.join(store.root, "blobs", "sha256", layer["digest"].split(":")[1]), "wb") as f:
        f.write(b"tampered")
    with pytest.raises(releases.ReleaseError, match="corrupt"):
        releases.pull_release(store, release.version, REPO, keys[1])
