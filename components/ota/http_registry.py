"""An OCI registry over HTTP(S) (the CNCF distribution API), with the same interface as OciLayout.

Speaks the API that Harbor, GHCR, ECR and the reference ``registry`` server share:
blob uploads (POST then PUT with the digest), manifests pushed by digest and then by
tag, tag listing, blob downloads that resume with HTTP ``Range``. Authentication is
basic auth, a pre-issued bearer token, or the distribution token flow (a ``401`` with a
``WWW-Authenticate: Bearer realm=...`` challenge, answered by asking the realm for a
token with the basic credentials). Credentials are never put into messages or logs.

Transport rules: credentials over plain ``http://`` need ``insecure=True`` unless the
registry is on a loopback address; the basic credentials go to a token realm only on the
registry's own host, over HTTPS (or loopback, or plain HTTP when ``insecure``); the
``Authorization`` header is sent only to the registry's own origin, so an upload
``Location`` or a redirect to another host (an object store) never receives it.

The distribution API has no conditional tag write, so a write that must not overwrite
(a version tag, a channel moved from a known state) is checked just before the ``PUT``
and read back after it; a writer that lost the race is told so (``ConcurrentWrite``).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import urllib.parse
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

import requests

from components.ota import oci_layout

_ACCEPT = ", ".join([oci_layout.MANIFEST_MEDIA_TYPE, oci_layout.INDEX_MEDIA_TYPE,
                     "application/vnd.docker.distribution.manifest.v2+json"])


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(RuntimeError):
    """The registry refused or could not be reached; the message names the registry, never the secret."""


class DownloadInterrupted(RegistryError):
    """A blob download stopped part-way; what arrived is kept and the next pull resumes from it."""


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (``localhost`` or a loopback address)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def parse_bearer_challenge(header: str) -> Optional[Dict[str, str]]:
    """The parameters of a ``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` header."""
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return dict(_CHALLENGE_PARAM.findall(params))


class HttpRegistry:
    """One repository in an OCI distribution registry.

    Args:
        base_url: e.g. ``http://127.0.0.1:5000`` or ``https://ghcr.io``.
        repository: e.g. ``kws/nano33ble_sense``.
        username, password: basic-auth credentials, or None for an open registry.
        token: a bearer token issued for the registry (sent instead of basic auth).
        timeout: seconds per request.
        insecure: accept sending credentials over plain ``http://`` to a host that is not loopback.

    Raises:
        RegistryError: credentials for a plain-HTTP registry off this machine without ``insecure``.
    """

    def __init__(self, base_url: str, repository: str, username: Optional[str] = None,
                 password: Optional[str] = None, timeout: float = 30.0, token: Optional[str] = None,
                 insecure: bool = False):
        self.base_url = base_url.rstrip("/")
        self.repository = repository
        self.root = f"{self.base_url}/{repository}"
        self.insecure = insecure
        has_credentials = username is not None or bool(token)
        if has_credentials and self.base_url.startswith("http://") and not insecure and not is_loopback(base_url):
            raise RegistryError(
                f"Registry {self.base_url} is plain HTTP and this command holds credentials for it: they would "
                "cross the network unencrypted. Use the registry's https:// address, or, on a network you trust, "
                "pass --insecure (release.insecure: true in the config). Loopback addresses are exempt.")
        self._origin = _origin(self.base_url)
        self._session = requests.Session()
        self._basic = None
        if username is not None:
            self._basic = "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        self._authorization = f"Bearer {token}" if token else self._basic
        self._timeout = timeout

    def _send(self, method: str, url: str, headers: Optional[Mapping[str, str]], **kwargs) -> requests.Response:
        headers = dict(headers or {})
        # Only the registry's own origin sees the credentials (requests also drops the header on
        # redirects to another host; an upload Location is followed here, so it is checked here).
        if self._authorization and _origin(url) == self._origin:
            headers["Authorization"] = self._authorization
        try:
            return self._session.request(method, url, timeout=self._timeout, headers=headers, **kwargs)
        except requests.RequestException as err:
            raise RegistryError(f"Registry {self.base_url} is unreachable ({type(err).__name__}). Check the URL "
                                "and that the registry is running.") from None

    def _fetch_token(self, challenge: Mapping[str, str]) -> bool:
        """Asks the challenge's realm for a token for its scope; False when there is nothing to ask with."""
        realm = challenge.get("realm")
        if not realm:
            return False
        realm_scheme, realm_host, _ = _origin(realm)
        if self._basic and (realm_host != self._origin[1] or not (
                realm_scheme == "https" or is_loopback(realm) or (self.insecure and realm_scheme == "http"))):
            raise RegistryError(
                f"Registry {self.base_url} asks for a token from {realm}, which is not on the registry's own host "
                "over HTTPS; the credentials are not sent there. Check the registry's token service configuration "
                "(its realm), or use a pre-issued token (TINYML_TFX_REGISTRY_TOKEN).")
        params = {key: challenge[key] for key in ("service", "scope") if key in challenge}
        headers = {"Authorization": self._basic} if self._basic else {}
        try:
            response = self._session.get(realm, params=params, headers=headers, timeout=self._timeout)
        except requests.RequestException as err:
            raise RegistryError(f"The token service {realm} of registry {self.base_url} is unreachable "
                                f"({type(err).__name__}).") from None
        if response.status_code in (401, 403):
            raise RegistryError(f"The token service {realm} of registry {self.base_url} refused the credentials "
                                f"(HTTP {response.status_code}). Check the username and password (file or environment) "
                                "the push uses.")
        try:
            body = response.json()
            token = body.get("token") or body["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise RegistryError(f"The token service {realm} of registry {self.base_url} answered HTTP "
                                f"{response.status_code} without a token.") from None
        self._authorization = f"Bearer {token}"
        return True

    def _request(self, method: str, url: str, ok=(200,), headers: Optional[Mapping[str, str]] = None,
                 **kwargs) -> requests.Response:
        if url.startswith("/"):
            url = self.base_url + url
        response = self._send(method, url, headers, **kwargs)
        if response.status_code == 401:
            # A token is scoped (pull, then push,pull): each new scope is a new challenge.
            challenge = parse_bearer_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge is not None and self._fetch_token(challenge):
                response = self._send(method, url, headers, **kwargs)
        if response.status_code == 401:
            raise RegistryError(f"Registry {self.base_url} refused the credentials for {self.repository} (HTTP 401). "
                                "Check the username and password (file or environment) the push uses.")
        if response.status_code not in ok:
            detail = " ".join(response.text[:200].split())
            hint = ""
            if method in ("POST", "PUT", "PATCH") and response.status_code in (405, 500, 503, 507):
                hint = (" The registry refuses writes: it is read-only (maintenance mode), out of space, or failing. "
                        "Nothing was tagged, so no release or channel changed; push again once it accepts writes.")
            raise RegistryError(f"Registry {self.base_url} answered HTTP {response.status_code} to {method} "
                                f"{url.replace(self.base_url, '')}: {detail}.{hint}")
        return response

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """No lock over HTTP: conditional tag writes are checked before and read back after (``tag``)."""
        yield

    def put_blob(self, data: bytes, media_type: str, annotations: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        """Uploads ``data``; a blob the registry already holds is reused only when its content still
        hashes to its digest.

        Raises:
            RegistryError: the registry holds a corrupt copy of the blob (the distribution server
                keeps an existing blob on a new upload, so it cannot be replaced from here).
        """
        digest = oci_layout.digest_of(data)
        exists = self._request("HEAD", f"/v2/{self.repository}/blobs/{digest}", ok=(200, 404))
        if exists.status_code == 200:
            held = self._request("GET", f"/v2/{self.repository}/blobs/{digest}").content
            if held != data:
                raise RegistryError(
                    f"Registry {self.base_url} holds a corrupt copy of blob {digest} in {self.repository} (its content "
                    f"hashes to {oci_layout.digest_of(held)}), so this push stopped before tagging anything: a release "
                    "built on it could not be pulled. Repair the registry's storage (delete that blob, e.g. with the "
                    "registry's garbage collection, or restore it from a backup) and push again.")
        else:
            start = self._request("POST", f"/v2/{self.repository}/blobs/uploads/", ok=(202,))
            location = start.headers["Location"]
            separator = "&" if "?" in location else "?"
            self._request("PUT", f"{location}{separator}digest={digest}", ok=(201,), data=data,
                          headers={"Content-Type": "application/octet-stream"})
        descriptor: Dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if annotations:
            descriptor["annotations"] = dict(annotations)
        return descriptor

    def get_blob(self, digest: str) -> bytes:
        data = self._request("GET", f"/v2/{self.repository}/blobs/{digest}").content
        if oci_layout.digest_of(data) != digest:
            raise oci_layout.LayoutError(f"Blob {digest} from {self.base_url} is corrupt: its content hashes to "
                                         f"{oci_layout.digest_of(data)}.")
        return data

    def download_blob(self, digest: str, path: str, chunk_bytes: int = 64 * 1024) -> int:
        """Streams a blob to ``path``, resuming a download that stopped part-way.

        The bytes arrive in ``path + ".part"``; when that file exists, only the rest is asked
        for (HTTP ``Range``). The digest is checked before the file takes its final name.

        Returns:
            The number of bytes transferred by this call.

        Raises:
            DownloadInterrupted: the connection dropped; what arrived is kept for the next call.
            oci_layout.LayoutError: the assembled blob does not match its digest (the partial
                file is removed, so the next call starts afresh).
        """
        partial = path + ".part"
        have = os.path.getsize(partial) if os.path.exists(partial) else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        response = self._request("GET", f"/v2/{self.repository}/blobs/{digest}", ok=(200, 206, 416),
                                 headers=headers, stream=True)
        transferred = 0
        if response.status_code != 416:  # 416: the partial file already holds the whole blob
            # A server that ignores Range answers 200 with the whole blob: start over.
            with open(partial, "ab" if response.status_code == 206 else "wb") as f:
                try:
                    for chunk in response.iter_content(chunk_bytes):
                        f.write(chunk)
                        transferred += len(chunk)
                except requests.RequestException:
                    raise DownloadInterrupted(
                        f"Download of blob {digest} from {self.base_url} was interrupted after "
                        f"{have + transferred} bytes; they are kept in {partial}; run the same pull again "
                        "to resume from there.") from None
        response.close()
        received = oci_layout.file_digest(partial)
        if received != digest:
            os.remove(partial)
            raise oci_layout.LayoutError(f"Blob {digest} from {self.base_url} is corrupt: its content hashes to "
                                         f"{received}.")
        os.replace(partial, path)
        return transferred

    def put_manifest(self, manifest: Mapping[str, Any]) -> Dict[str, Any]:
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        media_type = manifest.get("mediaType", oci_layout.MANIFEST_MEDIA_TYPE)
        digest = oci_layout.digest_of(body)
        self._request("PUT", f"/v2/{self.repository}/manifests/{digest}", ok=(201,), data=body,
                      headers={"Content-Type": media_type})
        return {"mediaType": media_type, "digest": digest, "size": len(body)}

    def _manifest_bytes(self, reference: str) -> requests.Response:
        return self._request("GET", f"/v2/{self.repository}/manifests/{reference}", headers={"Accept": _ACCEPT})

    def get_manifest(self, digest: str) -> Dict[str, Any]:
        body = self._manifest_bytes(digest).content
        if oci_layout.digest_of(body) != digest:
            raise oci_layout.LayoutError(f"Manifest {digest} from {self.base_url} does not match its digest.")
        return json.loads(body)

    def get_tagged_manifest(self, tag: str) -> Optional[Tuple[Dict[str, Any], Dict[str, Any]]]:
        """``(descriptor, manifest)`` of ``tag`` in one request: the digest is computed from the bytes
        received, so everything that follows can use it. None when the tag does not exist."""
        response = self._request("GET", f"/v2/{self.repository}/manifests/{tag}", ok=(200, 404),
                                 headers={"Accept": _ACCEPT})
        if response.status_code == 404:
            return None
        body = response.content
        digest = oci_layout.digest_of(body)
        announced = response.headers.get("Docker-Content-Digest")
        if announced and announced != digest:
            raise oci_layout.LayoutError(f"Manifest {tag} from {self.base_url} is announced as {announced} but its "
                                         f"content hashes to {digest}.")
        try:
            manifest = json.loads(body)
        except ValueError:
            raise oci_layout.LayoutError(f"Manifest {tag} from {self.base_url} is not JSON.") from None
        media_type = response.headers.get("Content-Type", oci_layout.MANIFEST_MEDIA_TYPE)
        return {"mediaType": media_type, "digest": digest, "size": len(body)}, manifest

    def tags(self) -> Dict[str, Dict[str, Any]]:
        response = self._request("GET", f"/v2/{self.repository}/tags/list", ok=(200, 404))
        names = (response.json().get("tags") or []) if response.status_code == 200 else []
        return {name: descriptor for name in names if (descriptor := self.resolve(name)) is not None}

    def resolve(self, tag: str) -> Optional[Dict[str, Any]]:
        response = self._request("HEAD", f"/v2/{self.repository}/manifests/{tag}", ok=(200, 404),
                                 headers={"Accept": _ACCEPT})
        if response.status_code == 404:
            return None
        return {"mediaType": response.headers.get("Content-Type", oci_layout.MANIFEST_MEDIA_TYPE),
                "digest": response.headers["Docker-Content-Digest"],
                "size": int(response.headers.get("Content-Length", 0))}

    def _current(self, tag: str) -> Optional[str]:
        descriptor = self.resolve(tag)
        return descriptor["digest"] if descriptor else None

    def tag(self, tag: str, descriptor: Mapping[str, Any], previous: Any = oci_layout.ANY) -> None:
        """Points ``tag`` at a manifest already pushed by digest (the last step of a push).

        Args:
            previous: ``oci_layout.ANY`` moves the tag whatever it points at; a digest (or None for
                "no such tag yet") is checked just before the write, and the tag is read back after it.

        Raises:
            oci_layout.ConcurrentWrite: when another writer changed the tag first.
        """
        if previous is not oci_layout.ANY and self._current(tag) != previous:
            raise oci_layout.ConcurrentWrite(
                f"Tag {tag} in {self.root} changed while this write was in progress (now {self._current(tag) or 'absent'}, "
                f"expected {previous or 'absent'}): another writer won. Nothing of this write is tagged; run the "
                "command again.")
        response = self._manifest_bytes(descriptor["digest"])
        self._request("PUT", f"/v2/{self.repository}/manifests/{tag}", ok=(201,), data=response.content,
                      headers={"Content-Type": descriptor.get("mediaType", oci_layout.MANIFEST_MEDIA_TYPE)})
        if previous is not oci_layout.ANY and self._current(tag) != descriptor["digest"]:
            raise oci_layout.ConcurrentWrite(
                f"Tag {tag} in {self.root} was written by another writer at the same time as this one (it now points "
                f"at {self._current(tag)}, not at {descriptor['digest']}): that writer won. Run the command again.")
