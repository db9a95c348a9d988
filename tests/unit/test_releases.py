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


@pytest.mark.parametrize("name", ["../../escaped.txt", "/etc/passwd", "sub/model.h", "..", ".hidden", "a\\b",
                                  "model.tflite\n", "", None, 7, "x" * 200])
def test_only_plain_base_names_are_release_files(name):
    assert not releases.safe_file_name(name)


def test_release_file_names_are_checked_on_push_and_on_pull(store, keys):
    private, public = keys
    with pytest.raises(releases.ReleaseError, match="plain base names.*'../escape.h'"):
        releases.push_release(store, {**FILES, "../escape.h": b"x"}, {}, REPO, private_key_pem=private)
    assert store.tags() == {}  # refused before anything was stored under a tag
    manifest = {"layers": [{"digest": "sha256:" + "0" * 64, "annotations": {oci_layout.TITLE: "/abs/model.tflite"}}],
                "annotations": {}}
    with pytest.raises(releases.ReleaseError, match="'/abs/model.tflite', which is not a plain file name"):
        releases.release_files_of(manifest, "Release 9.9.9")
    twice = {"layers": [{"digest": "sha256:" + "0" * 64, "annotations": {oci_layout.TITLE: "model.tflite"}}] * 2}
    with pytest.raises(releases.ReleaseError, match="twice"):
        releases.release_files_of(twice, "Release 9.9.9")


def test_versions_order_numerically_and_malformed_ones_are_refused():
    assert sorted(["0.10.0", "0.9.1", "1.0.0"], key=releases.version_key) == ["0.9.1", "0.10.0", "1.0.0"]
    for bad in ("1.0", "v1.0.0", "1.0.0\n", None):
        with pytest.raises(releases.ReleaseError, match="not MAJOR.MINOR.PATCH"):
            releases.version_key(bad)


def test_a_full_registry_disk_is_one_paragraph_and_tags_nothing(tmp_path):
    """A real write failure: the push runs with a 4 kB file-size limit (RLIMIT_FSIZE), as a full disk refuses."""
    import subprocess
    import sys

    script = f"""
import os, resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from components.ota import oci_layout, releases, signing
store = oci_layout.OciLayout({str(tmp_path / 'registry')!r})
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    releases.push_release(store, {{"model.tflite": os.urandom(20000)}}, {{}}, "local/kws",
                          private_key_pem=signing.generate_key_pair()[0])
except oci_layout.LayoutError as err:
    print(err)
"""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=120)
    assert "cannot be written (File too large)" in out.stdout and "Nothing was tagged" in out.stdout, out
    assert "Traceback" not in out.stderr and len(out.stdout.strip().splitlines()) == 1
    assert oci_layout.OciLayout(str(tmp_path / "registry"), create=False).tags() == {}
