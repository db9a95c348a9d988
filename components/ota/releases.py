"""Model releases in an OCI store: immutable semantic versions, signed, verified on pull.

A release is an ORAS-style artifact: one layer per file (titled with its name), the
annotations a fleet manager needs, and a cosign-format signature. The push order keeps
readers safe: blobs, manifest, signature, and the version tag last.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, Iterable, Mapping, Optional

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
PIPELINE_ANNOTATION = "dev.tinyml-tfx.pipeline"
RUN_ANNOTATION = "dev.tinyml-tfx.run-id"
LINEAGE_ANNOTATION = "dev.tinyml-tfx.mlmd"                # JSON: ML Metadata ids of the model and blessings
_MEDIA_TYPES = {".tflite": "application/vnd.tinyml-tfx.tflite", ".cc": "text/x-c++src", ".h": "text/x-c",
                ".json": "application/json", ".md": "text/markdown", ".html": "text/html"}
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


class ReleaseError(ValueError):
    """A push or pull that must not happen; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Release:
    version: str
    digest: str
    annotations: Dict[str, str]


def is_version(tag: str) -> bool:
    """Whether ``tag`` is a release version (``MAJOR.MINOR.PATCH``), not a channel or signature tag."""
    return _SEMVER.match(tag) is not None


def next_version(tags: Iterable[str]) -> str:
    """One patch above the highest ``X.Y.Z`` tag; ``0.1.0`` for the first release."""
    versions = sorted(tuple(int(p) for p in m.groups()) for m in (_SEMVER.match(t) for t in tags) if m)
    if not versions:
        return "0.1.0"
    major, minor, patch = versions[-1]
    return f"{major}.{minor}.{patch + 1}"


def push_release(store: oci_layout.OciLayout, files: Mapping[str, bytes], annotations: Mapping[str, str],
                 repository: str, version: Optional[str] = None, private_key_pem: Optional[bytes] = None,
                 allow_unsigned: bool = False) -> Release:
    """Pushes ``files`` (which must include model.tflite) as a new release.

    Raises:
        ReleaseError: when the version exists (versions are immutable), is not X.Y.Z,
            or no signing key was given without ``allow_unsigned``.
    """
    if MODEL_FILE not in files:
        raise ReleaseError(f"A release needs {MODEL_FILE}; got {', '.join(sorted(files))}.")
    if private_key_pem is None and not allow_unsigned:
        raise ReleaseError("No signing key: devices only take signed releases. Give the key (file, environment or "
                           "Kubernetes secret), or push unsigned explicitly with --allow-unsigned.")
    tags = store.tags()
    version = version or next_version(tags)
    if not _SEMVER.match(version):
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
        signature_manifest = store.put_manifest(oci_layout.release_manifest([layer], signing.PAYLOAD_MEDIA_TYPE, {}, store))
        store.tag(signing.signature_tag(manifest["digest"]), signature_manifest)
    store.tag(version, manifest)
    return Release(version, manifest["digest"], all_annotations)


def find_model(store, model: bytes) -> Optional[Release]:
    """The release whose model.tflite is ``model`` (by its annotated sha256), or None."""
    sha256 = oci_layout.digest_of(model).split(":")[1]
    for tag, descriptor in store.tags().items():
        if _SEMVER.match(tag):
            annotations = store.get_manifest(descriptor["digest"]).get("annotations", {})
            if annotations.get(MODEL_SHA256_ANNOTATION) == sha256:
                return Release(tag, descriptor["digest"], annotations)
    return None


def _fetch_layer(store, digest: str, download_dir: Optional[str]) -> bytes:
    if download_dir is None:
        return store.get_blob(digest)
    path = os.path.join(download_dir, digest.replace(":", "-"))
    if not os.path.exists(path):
        store.download_blob(digest, path)
    with open(path, "rb") as f:
        data = f.read()
    if oci_layout.digest_of(data) != digest:
        os.remove(path)
        raise oci_layout.LayoutError(f"Downloaded blob {path} does not match its digest {digest}; removed it.")
    return data


def pull_release(store: oci_layout.OciLayout, tag: str, repository: str, public_key_pem: Optional[bytes],
                 download_dir: Optional[str] = None) -> Dict[str, bytes]:
    """Downloads a release by version or channel tag, verifying digests and (with a key) the signature.

    With ``download_dir``, blobs are streamed there and kept: a pull that was interrupted
    resumes where it stopped (whole blobs are not fetched again, a partial one continues
    with an HTTP ``Range`` request). The caller removes the directory once the files are written.

    Raises:
        ReleaseError: when the tag is unknown, the signature is missing or wrong, or a file is corrupt.
    """
    descriptor = store.resolve(tag)
    if descriptor is None:
        raise ReleaseError(f"No release tagged '{tag}' in {store.root}; known: {', '.join(sorted(store.tags()))}.")
    if public_key_pem is not None:
        signature_descriptor = store.resolve(signing.signature_tag(descriptor["digest"]))
        if signature_descriptor is None:
            raise ReleaseError(f"Release {tag} ({descriptor['digest']}) is not signed; refusing it.")
        layer = store.get_manifest(signature_descriptor["digest"])["layers"][0]
        try:
            signing.verify(public_key_pem, store.get_blob(layer["digest"]),
                           layer["annotations"][signing.SIGNATURE_ANNOTATION], descriptor["digest"], repository)
        except signing.SignatureError as err:
            raise ReleaseError(f"Release {tag} failed signature verification: {err} Refusing it.") from err
    manifest = store.get_manifest(descriptor["digest"])
    files = {}
    for layer in manifest["layers"]:
        try:
            files[layer["annotations"][oci_layout.TITLE]] = _fetch_layer(store, layer["digest"], download_dir)
        except oci_layout.LayoutError as err:
            raise ReleaseError(f"Release {tag}: {err} Refusing it.") from err
    expected = manifest["annotations"][MODEL_SHA256_ANNOTATION]
    if oci_layout.digest_of(files[MODEL_FILE]).split(":")[1] != expected:
        raise ReleaseError(f"Release {tag}: {MODEL_FILE} does not match its annotated sha256; refusing it.")
    return files
