"""Release signatures the way cosign stores key-based signatures, so `cosign verify --key` accepts them.

A signature is an ECDSA P-256 signature (DER, base64) over a "simple signing" payload
that names the repository and the manifest digest. In a registry without the OCI
Referrers API (the reference registry), cosign keeps it as an image tagged
``sha256-<hex>.sig`` whose single layer is the payload, with the signature in the
layer annotation ``dev.cosignproject.cosign/signature``. This module builds and checks
those pieces; the registry code stores them.
"""

from __future__ import annotations

import base64
import json
from typing import Dict, Tuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"


class SignatureError(ValueError):
    """A signature that does not verify, or a key that cannot be used."""


def generate_key_pair() -> Tuple[bytes, bytes]:
    """A new ECDSA P-256 key pair as (private PEM, public PEM); for tests and first-time setup."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def signature_tag(manifest_digest: str) -> str:
    """The tag cosign uses for a manifest's signature: ``sha256:abc`` -> ``sha256-abc.sig``."""
    algorithm, _, hex_digest = manifest_digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64:
        raise SignatureError(f"'{manifest_digest}' is not a sha256 digest.")
    return f"sha256-{hex_digest}.sig"


def simple_signing_payload(docker_reference: str, manifest_digest: str) -> bytes:
    """The payload cosign signs: what is signed is the manifest digest, for this repository."""
    payload = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": None,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def _private_key(private_pem: bytes):
    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError) as err:
        raise SignatureError("The signing key is not an unencrypted PEM private key "
                             "(for example from 'cosign generate-key-pair' decrypted, or openssl ecparam).") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SignatureError("The signing key must be an ECDSA P-256 key, as cosign uses.")
    return key


def sign(private_pem: bytes, docker_reference: str, manifest_digest: str) -> Tuple[bytes, str]:
    """Signs a manifest digest; returns (payload, base64 DER signature)."""
    payload = simple_signing_payload(docker_reference, manifest_digest)
    signature = _private_key(private_pem).sign(payload, ec.ECDSA(hashes.SHA256()))
    return payload, base64.b64encode(signature).decode()


def verify(public_pem: bytes, payload: bytes, signature_b64: str, manifest_digest: str,
           docker_reference: str) -> None:
    """Checks the signature and that the payload names this digest and repository.

    Raises:
        SignatureError: saying which check failed.
    """
    try:
        key = serialization.load_pem_public_key(public_pem)
        key.verify(base64.b64decode(signature_b64), payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as err:
        raise SignatureError("The signature does not match the release: it was made with another key, or the "
                             "signed payload was changed.") from err
    except (ValueError, TypeError) as err:
        raise SignatureError(f"The public key or signature is malformed: {err}.") from err
    critical: Dict = json.loads(payload).get("critical", {})
    signed_digest = critical.get("image", {}).get("docker-manifest-digest")
    if signed_digest != manifest_digest:
        raise SignatureError(f"The signature is for {signed_digest}, not for this release's manifest {manifest_digest}.")
    signed_reference = critical.get("identity", {}).get("docker-reference")
    if signed_reference != docker_reference:
        raise SignatureError(f"The signature is for repository {signed_reference}, not {docker_reference}.")
