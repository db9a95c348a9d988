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
