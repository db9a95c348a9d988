"""An OCI image layout directory: the embedded OTA registry that needs no server.

The layout is the OCI standard (``oci-layout``, ``index.json``, ``blobs/sha256/``), so
``oras``, ``skopeo`` and ``crane`` read it. Writes are ordered for readers: blobs
first, manifest next, and the tag last by atomically replacing ``index.json``; an
interrupted push leaves unreferenced blobs, never a tag pointing at a partial release.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Dict, Mapping, Optional

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"


class LayoutError(ValueError):
    """A missing or corrupt blob, or a malformed layout."""


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class OciLayout:
    """Blobs, manifests and tags in an OCI image layout directory."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        os.makedirs(os.path.join(self.root, "blobs", "sha256"), exist_ok=True)
        if not os.path.exists(os.path.join(self.root, "oci-layout")):
            _atomic_write(os.path.join(self.root, "oci-layout"), b'{"imageLayoutVersion":"1.0.0"}')
        if not os.path.exists(self._index_path):
            self._write_index({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []})

    @property
    def _index_path(self) -> str:
        return os.path.join(self.root, "index.json")

    def _blob_path(self, digest: str) -> str:
        algorithm, _, hex_digest = digest.partition(":")
        if algorithm != "sha256" or len(hex_digest) != 64 or not all(c in "0123456789abcdef" for c in hex_digest):
            raise LayoutError(f"'{digest}' is not a sha256 digest.")
        return os.path.join(self.root, "blobs", "sha256", hex_digest)

    def _read_index(self) -> Dict[str, Any]:
        with open(self._index_path, "rb") as f:
            return json.load(f)

    def _write_index(self, index: Dict[str, Any]) -> None:
        _atomic_write(self._index_path, json.dumps(index, indent=2).encode())

    def put_blob(self, data: bytes, media_type: str, annotations: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        """Stores ``data`` (idempotently) and returns its descriptor."""
        digest = digest_of(data)
        path = self._blob_path(digest)
        if not os.path.exists(path):
            _atomic_write(path, data)
        descriptor: Dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if annotations:
            descriptor["annotations"] = dict(annotations)
        return descriptor

    def get_blob(self, digest: str) -> bytes:
        """The blob's bytes, checked against its digest.

        Raises:
            LayoutError: when the blob is missing or its content does not match its digest.
        """
        try:
            with open(self._blob_path(digest), "rb") as f:
                data = f.read()
        except FileNotFoundError as err:
            raise LayoutError(f"Blob {digest} is missing from {self.root}.") from err
        if digest_of(data) != digest:
            raise LayoutError(f"Blob {digest} in {self.root} is corrupt: its content hashes to {digest_of(data)}.")
        return data

    def download_blob(self, digest: str, path: str) -> int:
        """Copies a blob to ``path`` (checked against its digest); returns its size.

        The same call as ``HttpRegistry.download_blob``; a local copy has nothing to resume.
        """
        data = self.get_blob(digest)
        _atomic_write(path, data)
        return len(data)

    def put_manifest(self, manifest: Mapping[str, Any]) -> Dict[str, Any]:
        """Stores a manifest as a blob and returns its descriptor (not yet tagged)."""
        return self.put_blob(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode(),
                             manifest.get("mediaType", MANIFEST_MEDIA_TYPE))

    def get_manifest(self, digest: str) -> Dict[str, Any]:
        return json.loads(self.get_blob(digest))

    def tags(self) -> Dict[str, Dict[str, Any]]:
        """Tag -> manifest descriptor."""
        return {m["annotations"][REF_NAME]: m for m in self._read_index()["manifests"]
                if REF_NAME in m.get("annotations", {})}

    def resolve(self, tag: str) -> Optional[Dict[str, Any]]:
        return self.tags().get(tag)

    def tag(self, tag: str, descriptor: Mapping[str, Any]) -> None:
        """Points ``tag`` at a stored manifest (moving it if it exists), atomically."""
        self.get_blob(descriptor["digest"])  # never tag what is not fully stored
        index = self._read_index()
        index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
        entry = {k: v for k, v in descriptor.items() if k != "annotations"}
        entry["annotations"] = {REF_NAME: tag}
        index["manifests"].append(entry)
        self._write_index(index)


def release_manifest(layers: list, artifact_type: str, annotations: Mapping[str, str], layout: OciLayout) -> Dict[str, Any]:
    """An OCI artifact manifest (ORAS style): the empty config, ``layers`` and ``annotations``."""
    config = layout.put_blob(b"{}", EMPTY_MEDIA_TYPE)
    return {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE, "artifactType": artifact_type,
            "config": config, "layers": list(layers), "annotations": dict(annotations)}
