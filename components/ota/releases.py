"""Model releases in an OCI store: immutable semantic versions, signed, verified on pull.

A release is an ORAS-style artifact: one layer per file (titled with its name), the
annotations a fleet manager needs, and a cosign-format signature. The push order keeps
readers safe: blobs, manifest, signature, and the version tag last.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, Iterable, Mapping, Optional, Tuple

from components.ota import oci_layout, signing

ARTIFACT_TYPE = "application/vnd.tinyml-tfx.model.v1"
MODEL_FILE = "model.tflite"
VERSION_ANNOTATION = "org.opencontainers.image.version"
MODEL_SHA256_ANNOTATION = "dev.tinyml-tfx.model.sha256"
MODEL_BYTES_ANNOTATION = "dev.tinyml-tfx.model.bytes"
# What a gateway or fleet manager reads without downloading the model (set by the pusher).
TARGETS_ANNOTATION = "dev.tinyml-tfx.targets"            # device classes the MCU size gate passed, comma-separated
ARENA_ANNOTATION = "dev.tinyml-tfx.tensor-arena.bytes"
FLASH_ANNOTATION = "dev.tinyml-tfx.flash.bytes"           # model + TFLM runtime and kernels, without the firmware
OPS_ANNOTATION = "dev.tinyml-tfx.ops"                     # e.g. CONV_2D:v3,SOFTMAX:v1
TFLM_VERSION_ANNOTATION = "dev.tinyml-tfx.tflite-micro.version"
TF_VERSION_ANNOTATION = "dev.tinyml-tfx.tensorflow.version"
FRONTEND_ANNOTATION = "dev.tinyml-tfx.frontend.sha256"    # a device with another front end must not take it
NORMALIZATION_ANNOTATION = "dev.tinyml-tfx.normalization.sha256"  # sha256 of normalization.json (motion tasks)
FLOAT_ACCURACY_ANNOTATION = "dev.tinyml-tfx.accuracy.float"
INT8_ACCURACY_ANNOTATION = "dev.tinyml-tfx.accuracy.int8"
# The held-out test split, measured once after the gates (eval figures above decided the blessings).
TEST_FLOAT_ACCURACY_ANNOTATION = "dev.tinyml-tfx.test.accuracy.float"
TEST_INT8_ACCURACY_ANNOTATION = "dev.tinyml-tfx.test.accuracy.int8"
TEST_EXAMPLES_ANNOTATION = "dev.tinyml-tfx.test.examples"
PIPELINE_ANNOTATION = "dev.tinyml-tfx.pipeline"
RUN_ANNOTATION = "dev.tinyml-tfx.run-id"
LINEAGE_ANNOTATION = "dev.tinyml-tfx.mlmd"                # JSON: ML Metadata ids of the model and blessings
_MEDIA_TYPES = {".tflite": "application/vnd.tinyml-tfx.tflite", ".cc": "text/x-c++src", ".h": "text/x-c",
                ".json": "application/json", ".md": "text/markdown", ".html": "text/html"}
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ReleaseError(ValueError):
    """A push or pull that must not happen; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Release:
    version: str
    digest: str
    annotations: Dict[str, str]


def version_key(version: str) -> Tuple[int, int, int]:
    """``"1.10.0"`` -> ``(1, 10, 0)``, for ordering versions.

    Raises:
        ReleaseError: when ``version`` is not ``MAJOR.MINOR.PATCH``.
    """
    match = _SEMVER.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise ReleaseError(f"Version '{version}' is not MAJOR.MINOR.PATCH.")
    return tuple(int(p) for p in match.groups())  # type: ignore[return-value]


def is_version(tag: str) -> bool:
    """Whether ``tag`` is a release version (``MAJOR.MINOR.PATCH``), not a channel or signature tag."""
    return _SEMVER.fullmatch(tag) is not None


def next_version(tags: Iterable[str]) -> str:
    """One patch above the highest ``X.Y.Z`` tag; ``0.1.0`` for the first release."""
    versions = sorted(tuple(int(p) for p in m.groups()) for m in (_SEMVER.fullmatch(t) for t in tags) if m)
    if not versions:
        return "0.1.0"
    major, minor, patch = versions[-1]
    return f"{major}.{minor}.{patch + 1}"


def safe_file_name(name: object) -> bool:
    """Whether a layer title may become a file in a gateway's output folder: a plain base name
    (letters, digits, ``._-``; no separator, no ``..``, not absolute, not hidden)."""
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None and ".." not in name


def push_release(store, files: Mapping[str, bytes], annotations: Mapping[str, str],
                 repository: str, version: Optional[str] = None, private_key_pem: Optional[signing.PrivateKey] = None,
                 allow_unsigned: bool = False) -> Release:
    """Pushes ``files`` (which must include model.tflite) as a new release.

    The version is chosen and tagged under the store's writer lock, and the version tag is
    written only if it is still absent (``ConcurrentWrite`` otherwise), so two pushes at once
    never share a version.

    Raises:
        ReleaseError: when the version exists (versions are immutable), is not X.Y.Z, another
            push took it meanwhile, a file name is not a plain base name, or no signing key was
            given without ``allow_unsigned``.
    """
    if MODEL_FILE not in files:
        raise ReleaseError(f"A release needs {MODEL_FILE}; got {', '.join(sorted(files))}.")
    unsafe = sorted(name for name in files if not safe_file_name(name))
    if unsafe:
        raise ReleaseError(f"Release file names must be plain base names (letters, digits, '._-'): {unsafe}.")
    if private_key_pem is None and not allow_unsigned:
        raise ReleaseError("No signing key: devices only take signed releases. Give the key (file, environment or "
                           "Kubernetes secret), or push unsigned explicitly with --allow-unsigned.")
    with store.lock():
        tags = store.tags()
        version = version or next_version(tags)
        if not _SEMVER.fullmatch(version):
            raise ReleaseError(f"Version '{version}' is not MAJOR.MINOR.PATCH.")
        if version in tags:
            raise ReleaseError(f"Version {version} already exists in {store.root} and releases are immutable; "
                               f"push as {next_version(tags)} (or leave the version out to get it).")
        model = files[MODEL_FILE]
        layers = [store.put_blob(content, _MEDIA_TYPES.get(os.path.splitext(name)[1], "application/octet-stream"),
                                 {oci_layout.TITLE: name}) for name, content in sorted(files.items())]
        all_annotations = {**annotations, VERSION_ANNOTATION: version,
                           MODEL_SHA256_ANNOTATION: oci_layout.digest_of(model).split(":")[1],
                           MODEL_BYTES_ANNOTATION: str(len(model))}
        manifest = store.put_manifest(oci_layout.release_manifest(layers, ARTIFACT_TYPE, all_annotations, store))
        if private_key_pem is not None:
            payload, signature = signing.sign(private_key_pem, repository, manifest["digest"])
            layer = store.put_blob(payload, signing.PAYLOAD_MEDIA_TYPE, {signing.SIGNATURE_ANNOTATION: signature})
            signature_manifest = store.put_manifest(
                oci_layout.release_manifest([layer], signing.PAYLOAD_MEDIA_TYPE, {}, store))
            store.tag(signing.signature_tag(manifest["digest"]), signature_manifest)
        try:
            store.tag(version, manifest, previous=None)
        except oci_layout.ConcurrentWrite:
            raise ReleaseError(
                f"Another push released version {version} in {store.root} while this push was running, so this "
                f"release ({manifest['digest']}) was not tagged and nothing was overwritten. Push again: it gets the "
                "next version (or finds the other push's release if it holds the same model).") from None
    return Release(version, manifest["digest"], all_annotations)


def find_model(store, model: bytes) -> Optional[Release]:
    """The release whose model.tflite is ``model`` (by its annotated sha256), or None."""
    sha256 = oci_layout.digest_of(model).split(":")[1]
    for tag, descriptor in store.tags().items():
        if _SEMVER.fullmatch(tag):
            annotations = store.get_manifest(descriptor["digest"]).get("annotations", {})
            if annotations.get(MODEL_SHA256_ANNOTATION) == sha256:
                return Release(tag, descriptor["digest"], annotations)
    return None


def verify_signature(store, digest: str, repository: str, public_key_pem: bytes, what: str) -> None:
    """Checks the cosign-format signature of manifest ``digest`` (stored under its ``.sig`` tag).

    Raises:
        ReleaseError: naming ``what`` (e.g. "Release 0.1.0 on pico-stable"): unsigned, or the
            signature does not verify for this digest and repository.
    """
    tagged = store.get_tagged_manifest(signing.signature_tag(digest))
    if tagged is None:
        raise ReleaseError(f"{what} ({digest}) is not signed; refusing it.")
    try:
        layer = tagged[1]["layers"][0]
        # Our payload is a function of (repository, digest): when the stored one is exactly that,
        # the signature is checked over those bytes without fetching them (one request fewer).
        expected = signing.simple_signing_payload(repository, digest)
        payload = expected if layer["digest"] == oci_layout.digest_of(expected) else store.get_blob(layer["digest"])
        signing.verify(public_key_pem, payload, layer["annotations"][signing.SIGNATURE_ANNOTATION], digest, repository)
    except (KeyError, IndexError, TypeError, oci_layout.LayoutError) as err:
        raise ReleaseError(f"{what} has a malformed signature ({type(err).__name__}: {err}); refusing it.") from None
    except signing.SignatureError as err:
        raise ReleaseError(f"{what} failed signature verification: {err} Refusing it.") from err


def release_files_of(manifest: Mapping, what: str) -> Dict[str, Dict]:
    """File name -> layer descriptor of a release manifest, every name checked (``safe_file_name``).

    Raises:
        ReleaseError: a layer without a title, a name that is not a plain base name (``..``, a
            separator, absolute, hidden), a name used twice, a malformed digest, or no model.
    """
    layers: Dict[str, Dict] = {}
    for layer in manifest.get("layers") or []:
        name = (layer.get("annotations") or {}).get(oci_layout.TITLE) if isinstance(layer, dict) else None
        if not safe_file_name(name):
            raise ReleaseError(
                f"{what} names a file {name!r}, which is not a plain file name (letters, digits, '._-'; no '..', "
                "no separator, not absolute, not hidden): a release must not write outside the output folder. "
                "Refusing it; nothing was written.")
        if name in layers:
            raise ReleaseError(f"{what} names the file {name!r} twice; refusing it; nothing was written.")
        try:
            oci_layout.check_digest(layer.get("digest", ""))
        except oci_layout.LayoutError as err:
            raise ReleaseError(f"{what}: layer {name!r} has a malformed digest ({err}); refusing it.") from None
        layers[name] = layer
    if MODEL_FILE not in layers:
        raise ReleaseError(f"{what} has no {MODEL_FILE}; refusing it.")
    expected = (manifest.get("annotations") or {}).get(MODEL_SHA256_ANNOTATION)
    if layers[MODEL_FILE]["digest"] != f"sha256:{expected}":
        raise ReleaseError(f"{what}: {MODEL_FILE} does not match its annotated sha256; refusing it.")
    return layers


def download_verified(store, digest: str, folder: str) -> str:
    """The path of blob ``digest`` in ``folder``: downloaded (resuming a partial download) unless a
    copy whose content matches the digest is already there; a copy that does not match is replaced."""
    path = os.path.join(folder, f"sha256-{oci_layout.check_digest(digest)}")
    if os.path.exists(path) and oci_layout.file_digest(path) != digest:
        os.remove(path)
    if not os.path.exists(path):
        store.download_blob(digest, path)
    return path


def _fetch_layer(store, digest: str, download_dir: Optional[str]) -> bytes:
    if download_dir is None:
        return store.get_blob(digest)
    with open(download_verified(store, digest, download_dir), "rb") as f:
        return f.read()


def pull_release(store, tag: str, repository: str, public_key_pem: Optional[bytes],
                 download_dir: Optional[str] = None) -> Dict[str, bytes]:
    """Downloads a release by version or channel tag, verifying digests and (with a key) the signature.

    The tag is resolved once; the signature, the manifest and every file are those of that
    digest. With ``download_dir``, blobs are streamed there and kept: a pull that was
    interrupted resumes where it stopped (whole blobs are not fetched again, a partial one
    continues with an HTTP ``Range`` request). The caller removes the directory once the
    files are written. A gateway uses ``gateway.pull``, which adds the device checks.

    Raises:
        ReleaseError: when the tag is unknown, the signature is missing or wrong, a file name is
            unsafe, or a file is corrupt.
    """
    tagged = store.get_tagged_manifest(tag)
    if tagged is None:
        raise ReleaseError(f"No release tagged '{tag}' in {store.root}; known: {', '.join(sorted(store.tags()))}.")
    descriptor, manifest = tagged
    if public_key_pem is not None:
        verify_signature(store, descriptor["digest"], repository, public_key_pem, f"Release {tag}")
    files = {}
    for name, layer in release_files_of(manifest, f"Release {tag}").items():
        try:
            files[name] = _fetch_layer(store, layer["digest"], download_dir)
        except oci_layout.LayoutError as err:
            raise ReleaseError(f"Release {tag}: {err} Refusing it.") from err
    return files
