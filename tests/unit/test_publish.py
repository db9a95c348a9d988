"""Which key signs a release, and what a release records about its input processing."""

import pytest

from components.ota import publish, releases, signing
from pipeline import config as config_lib

REMOTE = "https://registry.example.com"


@pytest.fixture()
def dev_key(tmp_path):
    path = str(tmp_path / "work" / "keys" / publish.DEV_KEY_FILE)
    assert publish.ensure_development_key(path, str(tmp_path / "work" / "registry"))
    return path


def test_the_development_key_is_the_one_the_config_names():
    assert publish.DEV_KEY_FILE == config_lib.DEV_SIGNING_KEY


def test_a_configured_key_file_and_the_environment_together_are_an_error(tmp_path):
    private, _ = signing.generate_key_pair()
    (tmp_path / "release.key").write_bytes(private)
    environ = {publish.SIGNING_KEY_ENV: signing.generate_key_pair()[0].decode()}
    with pytest.raises(publish.PublishError, match="Two signing keys .*release.key.*TINYML_TFX_SIGNING_KEY"):
        publish.load_signing_key(str(tmp_path / "release.key"), "", environ)


def test_the_environment_replaces_only_the_development_key(dev_key):
    private, public = signing.generate_key_pair()
    key = publish.load_signing_key(dev_key, "", {publish.SIGNING_KEY_ENV: private.decode()})
    assert signing.public_pem(key) == public
    assert signing.public_pem(publish.load_signing_key(dev_key, "", {})) == open(dev_key + ".pub", "rb").read()


def test_an_encrypted_key_takes_its_passphrase_from_cosign_password_or_its_file(tmp_path):
    private, public = signing.generate_key_pair(b"release passphrase")
    (tmp_path / "release.key").write_bytes(private)
    key_file = str(tmp_path / "release.key")
    assert signing.public_pem(publish.load_signing_key(key_file, "", {"COSIGN_PASSWORD": "release passphrase"})) \
        == public
    (tmp_path / "passphrase").write_text("release passphrase\n")
    from_file = publish.load_signing_key(key_file, "", {"COSIGN_PASSWORD_FILE": str(tmp_path / "passphrase")})
    assert signing.public_pem(from_file) == public
    with pytest.raises(publish.PublishError, match=f"Signing key {key_file} could not be decrypted: the passphrase"):
        publish.load_signing_key(key_file, "", {"COSIGN_PASSWORD": "wrong"})
    with pytest.raises(publish.PublishError, match="encrypted and no passphrase"):
        publish.load_signing_key(key_file, "", {})


def test_no_development_key_is_made_for_a_remote_registry(tmp_path):
    dev_key = str(tmp_path / "keys" / publish.DEV_KEY_FILE)
    assert not publish.ensure_development_key(dev_key, REMOTE)
    assert not (tmp_path / "keys").exists()
    with pytest.raises(publish.PublishError, match="No signing key for registry https://registry.example.com.*"
                                                   "tinyml-tfx keys generate"):
        publish.load_signing_key(dev_key, REMOTE, {})
    made = str(tmp_path / "work" / "keys" / publish.DEV_KEY_FILE)
    assert publish.ensure_development_key(made, str(tmp_path / "work" / "registry"))
    with pytest.raises(publish.PublishError, match=f"\\({made} is the development key\\)"):
        publish.load_signing_key(made, REMOTE, {})  # made for a local run: never signs for a fleet's registry
    destination = publish.Destination(REMOTE, "kws", signing_key_file=None)
    with pytest.raises(publish.PublishError, match="tinyml-tfx keys generate"):
        publish.signing_key_for(destination, {})


def test_key_pairs_are_never_overwritten(tmp_path):
    public = publish.write_key_pair(str(tmp_path / "release.key"), b"pw")
    assert (tmp_path / "release.key").stat().st_mode & 0o777 == 0o600 and public.endswith(".pub")
    with pytest.raises(publish.PublishError, match="exists; a key is never overwritten"):
        publish.write_key_pair(str(tmp_path / "release.key"), b"pw")


def test_the_input_processing_annotation_is_a_given_hash_or_a_shipped_files_hash():
    import hashlib

    files = {"normalization.json": b'{"mean": [0.5]}'}
    given = publish.InputProcessing(releases.FRONTEND_ANNOTATION, sha256="ab" * 32)
    shipped = publish.InputProcessing(releases.NORMALIZATION_ANNOTATION, file="normalization.json")
    assert given.value(files) == "ab" * 32
    assert shipped.value(files) == hashlib.sha256(files["normalization.json"]).hexdigest()
    assert publish.InputProcessing.from_json(shipped.to_json()) == shipped
    with pytest.raises(publish.PublishError, match="shipped no normalization.json"):
        shipped.value({})
