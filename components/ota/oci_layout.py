"""An OCI image layout directory: the embedded OTA registry that needs no server.

The layout is the OCI standard (``oci-layout``, ``index.json``, ``blobs/sha256/``), so
``oras``, ``skopeo`` and ``crane`` read it. Writes are ordered for readers: blobs
first, manifest next, and the tag last by atomically replacing ``index.json``; an
interrupted push leaves unreferenced blobs, never a tag pointing at a partial release.

Writers take an exclusive file lock (``.tinyml-tfx.lock`` beside ``index.json``) for every
read-modify-write of ``index.json``, and a push holds it from choosing its version to
tagging it, so two pushes at once get two versions instead of one overwriting the other.
A blob already on disk is reused only when its content still matches its digest.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
LOCK_FILE = ".tinyml-tfx.lock"
# ``tag(..., previous=ANY)`` moves a tag whatever it points at.
ANY = object()


class LayoutError(ValueError):
    """A missing or corrupt blob, a malformed layout, or a registry folder that cannot be written."""


class ConcurrentWrite(LayoutError):
    """Another writer changed a tag between this writer's read and its write; nothing of this write is tagged."""


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: str) -> str:
    """The sha256 digest of a file's content, read in blocks."""
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha256.update(block)
    return "sha256:" + sha256.hexdigest()


def check_digest(digest: str) -> str:
    """The hex part of a ``sha256:<64 hex>`` digest; anything else (e.g. from an untrusted manifest) is refused."""
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64 or not all(c in "0123456789abcdef" for c in hex_digest):
        raise LayoutError(f"'{digest}' is not a sha256 digest.")
    return hex_digest


def _unwritable(root: str, err: OSError) -> LayoutError:
    return LayoutError(
        f"The registry folder {root} cannot be written ({err.strerror or err}): it is read-only, full or not a "
        "folder. Free space, fix its permissions, or point release.registry (--registry) at a writable folder. "
        "Nothing was tagged, so no release or channel changed.")


def atomic_write(path: str, data: bytes) -> None:
    """Writes ``path`` whole or not at all (a temporary file in the same folder, then a rename)."""
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
    """Blobs, manifests and tags in an OCI image layout directory.

    Args:
        root: the layout's folder.
        create: make the layout when it does not exist (pushes do; pulls and listings never
            create a registry, they refuse a folder that holds none).
        lock_timeout: seconds a writer waits for another writer's lock before refusing.
        repository: the repository name the layout holds (what signatures and channel histories name).
    """

    def __init__(self, root: str, create: bool = True, lock_timeout: float = 120.0, repository: Optional[str] = None):
        self.root = os.path.abspath(root)
        self.repository = repository
        self.lock_timeout = lock_timeout
        self._held = threading.local()
        if not create:
            if not os.path.isfile(self._index_path):
                raise LayoutError(f"There is no OCI registry at {self.root} (no index.json). Check --registry and "
                                  "--repository (or release.registry in the config); a pull never creates one.")
            return
        try:
            os.makedirs(os.path.join(self.root, "blobs", "sha256"), exist_ok=True)
            if not os.path.exists(os.path.join(self.root, "oci-layout")):
                atomic_write(os.path.join(self.root, "oci-layout"), b'{"imageLayoutVersion":"1.0.0"}')
            if not os.path.exists(self._index_path):
                with self.lock():
                    if not os.path.exists(self._index_path):
                        self._write_index({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []})
        except OSError as err:
            raise _unwritable(self.root, err) from None

    @property
    def _index_path(self) -> str:
        return os.path.join(self.root, "index.json")

    def _blob_path(self, digest: str) -> str:
        return os.path.join(self.root, "blobs", "sha256", check_digest(digest))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the layout's writer lock (re-entrant within a thread); waits up to ``lock_timeout``.

        Raises:
            LayoutError: when another writer holds the lock longer than ``lock_timeout``.
        """
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        path = os.path.join(self.root, LOCK_FILE)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise _unwritable(self.root, err) from None
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                        raise LayoutError(
                            f"Another writer ({holder}) has held the lock of registry {self.root} for more than "
                            f"{self.lock_timeout:.0f} s, so this push or channel move did not start. Wait for it to "
                            f"finish (or stop it) and run the command again.") from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}".encode(), 0)
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _read_index(self) -> Dict[str, Any]:
        try:
            with open(self._index_path, "rb") as f:
                return json.load(f)
        except (OSError, ValueError) as err:
            raise LayoutError(f"The registry index {self._index_path} cannot be read ({err}); restore it from a "
                              "backup or push into a new registry folder.") from None

    def _write_index(self, index: Dict[str, Any]) -> None:
        atomic_write(self._index_path, json.dumps(index, indent=2).encode())

    def put_blob(self, data: bytes, media_type: str, annotations: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        """Stores ``data`` and returns its descriptor; a blob already stored is reused only when its
        content still matches its digest (a corrupt one is replaced)."""
        digest = digest_of(data)
        path = self._blob_path(digest)
        try:
            if not os.path.exists(path) or file_digest(path) != digest:
                atomic_write(path, data)
        except OSError as err:
            raise _unwritable(self.root, err) from None
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
        atomic_write(path, data)
        return len(data)

    def put_manifest(self, manifest: Mapping[str, Any]) -> Dict[str, Any]:
        """Stores a manifest as a blob and returns its descriptor (not yet tagged)."""
        return self.put_blob(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode(),
                             manifest.get("mediaType", MANIFEST_MEDIA_TYPE))

    def get_manifest(self, digest: str) -> Dict[str, Any]:
        return json.loads(self.get_blob(digest))

    def get_tagged_manifest(self, tag: str) -> Optional[Tuple[Dict[str, Any], Dict[str, Any]]]:
        """``(descriptor, manifest)`` of ``tag`` read once (the manifest checked against that
        descriptor's digest), or None when the tag does not exist."""
        descriptor = self.resolve(tag)
        if descriptor is None:
            return None
        return descriptor, self.get_manifest(descriptor["digest"])

    def tags(self) -> Dict[str, Dict[str, Any]]:
        """Tag -> manifest descriptor."""
        return {m["annotations"][REF_NAME]: m for m in self._read_index()["manifests"]
                if REF_NAME in m.get("annotations", {})}

    def resolve(self, tag: str) -> Optional[Dict[str, Any]]:
        return self.tags().get(tag)

    def tag(self, tag: str, descriptor: Mapping[str, Any], previous: Any = ANY) -> None:
        """Points ``tag`` at a stored manifest, atomically, under the writer lock.

        Args:
            previous: ``ANY`` moves the tag whatever it points at; a digest (or None for "no such
                tag yet") makes the write conditional on the tag still being there.

        Raises:
            ConcurrentWrite: when ``previous`` is given and the tag has changed since.
        """
        self.get_blob(descriptor["digest"])  # never tag what is not fully stored
        with self.lock():
            index = self._read_index()
            current = next((m["digest"] for m in index["manifests"]
                            if m.get("annotations", {}).get(REF_NAME) == tag), None)
            if previous is not ANY and current != previous:
                raise ConcurrentWrite(
                    f"Tag {tag} in {self.root} changed while this write was in progress (now "
                    f"{current or 'absent'}, expected {previous or 'absent'}): another writer won. Nothing of this "
                    "write is tagged; run the command again.")
            index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
            entry = {k: v for k, v in descriptor.items() if k != "annotations"}
            entry["annotations"] = {REF_NAME: tag}
            index["manifests"].append(entry)
            try:
                self._write_index(index)
            except OSError as err:
                raise _unwritable(self.root, err) from None


def embedded_data(descriptor: Mapping[str, Any]) -> Optional[bytes]:
    """The content a descriptor embeds (OCI 1.1 ``data``), if present and matching its digest."""
    try:
        data = base64.b64decode(descriptor["data"], validate=True)
    except (KeyError, TypeError, ValueError):
        return None
    return data if digest_of(data) == descriptor.get("digest") else None


def release_manifest(layers: list, artifact_type: str, annotations: Mapping[str, str], store) -> Dict[str, Any]:
    """An OCI artifact manifest (ORAS style): the empty config, ``layers`` and ``annotations``."""
    config = store.put_blob(b"{}", EMPTY_MEDIA_TYPE)
    return {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE, "artifactType": artifact_type,
            "config": config, "layers": list(layers), "annotations": dict(annotations)}

