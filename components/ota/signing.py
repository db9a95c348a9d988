"""Release signatures the way cosign stores key-based signatures, so `cosign verify --key` accepts them.

A signature is an ECDSA P-256 signature (DER, base64) over a "simple signing" payload
that names the repository and the manifest digest. In a registry without the OCI
Referrers API (the reference registry), cosign keeps it as an image tagged
``sha256-<hex>.sig`` whose single layer is the payload, with the signature in the
layer annotation ``dev.cosignproject.cosign/signature``. This module builds and checks
those pieces; the registry code stores them.

Private keys are PEM (PKCS#8, SEC1 or an encrypted PKCS#8 ``ENCRYPTED PRIVATE KEY``); an
encrypted key's passphrase comes from the caller (``COSIGN_PASSWORD``, as cosign reads it).
``generate_key_pair`` encrypts with PBES2: PBKDF2-HMAC-SHA256 (600,000 rounds, OWASP's 2023
figure for that hash) and AES-256-CBC, which OpenSSL and ``cryptography`` read.

Channel histories are signed as DSSE envelopes (the in-toto / sigstore signing envelope):
the signature covers the payload type and the payload bytes (``pae``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
PBKDF2_ROUNDS = 600_000
PrivateKey = Union[bytes, ec.EllipticCurvePrivateKey]  # PEM (unencrypted) or a loaded key


class SignatureError(ValueError):
    """A signature that does not verify, or a key that cannot be used."""


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(p) for p in dotted.split("."))
    body = bytearray([40 * first + second])
    for value in rest:
        chunk = [value & 0x7F]
        while value > 0x7F:
            value >>= 7
            chunk.append(0x80 | (value & 0x7F))
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _encrypted_pkcs8(key: ec.EllipticCurvePrivateKey, passphrase: bytes) -> bytes:
    """PEM ``ENCRYPTED PRIVATE KEY`` (RFC 8018 PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC)."""
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    salt, iv = os.urandom(16), os.urandom(16)
    secret = hashlib.pbkdf2_hmac("sha256", passphrase, salt, PBKDF2_ROUNDS, 32)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    sequence = lambda *parts: _der(0x30, b"".join(parts))  # noqa: E731
    pbkdf2 = sequence(_oid("1.2.840.113549.1.5.12"), sequence(
        _der(0x04, salt), _der_int(PBKDF2_ROUNDS), sequence(_oid("1.2.840.113549.2.9"), b"\x05\x00")))
    aes = sequence(_oid("2.16.840.1.101.3.4.1.42"), _der(0x04, iv))
    info = sequence(sequence(_oid("1.2.840.113549.1.5.13"), sequence(pbkdf2, aes)), _der(0x04, encrypted))
    body = base64.encodebytes(info).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END ENCRYPTED PRIVATE KEY-----\n").encode()


def generate_key_pair(passphrase: Optional[bytes] = None) -> Tuple[bytes, bytes]:
    """A new ECDSA P-256 key pair as (private PEM, public PEM); the private key is encrypted
    when a ``passphrase`` is given (see the module docstring), plain PKCS#8 otherwise."""
    key = ec.generate_private_key(ec.SECP256R1())
    if passphrase:
        private = _encrypted_pkcs8(key, passphrase)
    else:
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return private, public_pem(key)


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The public half of ``key`` as PEM (what ``cosign verify --key`` and gateways take)."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


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


def load_private_key(private_pem: bytes, passphrase: Optional[bytes] = None,
                     source: str = "The signing key") -> ec.EllipticCurvePrivateKey:
    """The ECDSA P-256 key in ``private_pem``, decrypted with ``passphrase`` when it is encrypted.

    Raises:
        SignatureError: one sentence naming ``source``: not a PEM key, encrypted without a
            passphrase, a wrong passphrase, or not P-256.
    """
    encrypted = b"ENCRYPTED" in private_pem.split(b"\n", 1)[0]
    try:
        key = serialization.load_pem_private_key(private_pem, password=passphrase if encrypted else None)
    except TypeError:
        raise SignatureError(f"{source} is encrypted and no passphrase was given: set COSIGN_PASSWORD (or "
                             "COSIGN_PASSWORD_FILE naming a file that holds it).") from None
    except ValueError:
        if encrypted:
            raise SignatureError(f"{source} could not be decrypted: the passphrase (COSIGN_PASSWORD or "
                                 "COSIGN_PASSWORD_FILE) is wrong for it.") from None
        raise SignatureError(f"{source} is not a PEM private key (make one with 'tinyml-tfx keys generate').") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SignatureError(f"{source} must be an ECDSA P-256 key, as cosign uses.")
    return key


def as_private_key(private_key: PrivateKey) -> ec.EllipticCurvePrivateKey:
    """A loaded key as it is; PEM bytes loaded (they must be unencrypted: see ``load_private_key``)."""
    return private_key if isinstance(private_key, ec.EllipticCurvePrivateKey) else load_private_key(private_key)


def sign(private_key: PrivateKey, docker_reference: str, manifest_digest: str) -> Tuple[bytes, str]:
    """Signs a manifest digest; returns (payload, base64 DER signature)."""
    payload = simple_signing_payload(docker_reference, manifest_digest)
    signature = as_private_key(private_key).sign(payload, ec.ECDSA(hashes.SHA256()))
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


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _key_id(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def dsse_envelope(private_key: Optional[PrivateKey], payload_type: str, payload: bytes) -> Dict[str, Any]:
    """A DSSE envelope of ``payload``, signed with ``private_key`` (no signature without a key)."""
    signatures = []
    if private_key is not None:
        key = as_private_key(private_key)
        signature = key.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
        signatures.append({"keyid": _key_id(key.public_key()), "sig": base64.b64encode(signature).decode()})
    return {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(), "signatures": signatures}


def dsse_payload(envelope: Mapping[str, Any], payload_type: str, public_pem: Optional[bytes]) -> bytes:
    """The payload of a DSSE envelope, after checking its type and (with a key) one signature by that key.

    Raises:
        SignatureError: a malformed envelope, another payload type, no signature, or none that verifies.
    """
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        kind = envelope["payloadType"]
        signatures = list(envelope.get("signatures") or [])
    except (KeyError, TypeError, ValueError):
        raise SignatureError("The signed envelope is malformed (DSSE needs payloadType, payload, signatures).") from None
    if kind != payload_type:
        raise SignatureError(f"The signed envelope holds a '{kind}', not a '{payload_type}'.")
    if public_pem is None:
        return payload
    if not signatures:
        raise SignatureError("The envelope is not signed.")
    key = serialization.load_pem_public_key(public_pem)
    for entry in signatures:
        try:
            key.verify(base64.b64decode(entry["sig"]), pae(kind, payload), ec.ECDSA(hashes.SHA256()))
            return payload
        except (InvalidSignature, KeyError, TypeError, ValueError):
            continue
    raise SignatureError("No signature on the envelope verifies with the public key: it was signed with another "
                         "key, or its content was changed after signing.")
