import base64
import json

import pytest

from components.ota import signing

DIGEST = "sha256:" + "ab" * 32
REPO = "registry.local:5000/kws/nano33ble_sense"


@pytest.fixture(scope="module")
def keys():
    return signing.generate_key_pair()


def test_sign_and_verify_round_trip_in_cosigns_format(keys):
    private, public = keys
    payload, signature = signing.sign(private, REPO, DIGEST)
    critical = json.loads(payload)["critical"]
    assert critical == {"identity": {"docker-reference": REPO}, "image": {"docker-manifest-digest": DIGEST},
                        "type": "cosign container image signature"}
    assert json.loads(payload)["optional"] is None
    base64.b64decode(signature)  # DER signature, base64
    signing.verify(public, payload, signature, DIGEST, REPO)
    assert signing.signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"


def test_wrong_key_tampered_payload_and_other_digest_are_refused(keys):
    private, public = keys
    payload, signature = signing.sign(private, REPO, DIGEST)
    _, other_public = signing.generate_key_pair()
    with pytest.raises(signing.SignatureError, match="another key"):
        signing.verify(other_public, payload, signature, DIGEST, REPO)
    tampered = payload.replace(b"ab", b"cd", 1)
    with pytest.raises(signing.SignatureError, match="another key, or the signed payload was changed"):
        signing.verify(public, tampered, signature, DIGEST, REPO)
    with pytest.raises(signing.SignatureError, match="not for this release"):
        signing.verify(public, payload, signature, "sha256:" + "ef" * 32, REPO)
    with pytest.raises(signing.SignatureError, match="not .*other/repo"):
        signing.verify(public, payload, signature, DIGEST, "other/repo")


def test_only_p256_pem_keys_sign():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(signing.SignatureError, match="P-256"):
        signing.sign(p384, REPO, DIGEST)
    with pytest.raises(signing.SignatureError, match="PEM private key"):
        signing.sign(b"not a key", REPO, DIGEST)
    with pytest.raises(signing.SignatureError, match="not a sha256 digest"):
        signing.signature_tag("md5:abc")


def test_an_encrypted_key_signs_with_the_right_passphrase_only(keys):
    private, public = signing.generate_key_pair(b"correct horse")
    assert private.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = signing.load_private_key(private, b"correct horse")
    payload, signature = signing.sign(key, REPO, DIGEST)
    signing.verify(public, payload, signature, DIGEST, REPO)
    with pytest.raises(signing.SignatureError, match="passphrase .* is wrong"):
        signing.load_private_key(private, b"battery staple")
    with pytest.raises(signing.SignatureError, match="encrypted and no passphrase was given.*COSIGN_PASSWORD"):
        signing.load_private_key(private, None)
    with pytest.raises(signing.SignatureError, match="encrypted"):
        signing.sign(private, REPO, DIGEST)  # PEM bytes are only taken unencrypted
    # An unencrypted key loads whatever COSIGN_PASSWORD says.
    assert signing.public_pem(signing.load_private_key(keys[0], b"ignored")) == keys[1]


def test_the_encrypted_key_is_standard_pkcs8_with_a_slow_kdf():
    """OpenSSL reads it (PBES2, PBKDF2-HMAC-SHA256 with 600,000 rounds, AES-256-CBC)."""
    import subprocess

    from tests.support import tools

    private, public = signing.generate_key_pair(b"pw")
    openssl = tools.require_tool("openssl", tools.OPENSSL)
    parsed = subprocess.run([openssl, "asn1parse"], input=private, capture_output=True, check=True).stdout.decode()
    assert "PBES2" in parsed and "PBKDF2" in parsed and "aes-256-cbc" in parsed and ":0927C0" in parsed
    out = subprocess.run([openssl, "pkey", "-passin", "pass:pw", "-pubout"], input=private, capture_output=True,
                         check=True).stdout
    assert out == public


def test_dsse_envelopes_verify_and_detect_changes(keys):
    private, public = keys
    envelope = signing.dsse_envelope(private, "application/x-test", b'{"entries": [1]}')
    assert signing.dsse_payload(envelope, "application/x-test", public) == b'{"entries": [1]}'
    changed = dict(envelope, payload=base64.b64encode(b'{"entries": [2]}').decode())
    with pytest.raises(signing.SignatureError, match="changed after signing"):
        signing.dsse_payload(changed, "application/x-test", public)
    with pytest.raises(signing.SignatureError, match="not a 'application/x-other'"):
        signing.dsse_payload(envelope, "application/x-other", public)
    with pytest.raises(signing.SignatureError, match="another key"):
        signing.dsse_payload(envelope, "application/x-test", signing.generate_key_pair()[1])
    with pytest.raises(signing.SignatureError, match="not signed"):
        signing.dsse_payload(signing.dsse_envelope(None, "application/x-test", b"x"), "application/x-test", public)
    assert signing.pae("t", b"ab") == b"DSSEv1 1 t 2 ab"  # the DSSE spec's encoding
