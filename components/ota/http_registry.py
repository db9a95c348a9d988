"""An OCI registry over HTTP(S) (the CNCF distribution API), with the same interface as OciLayout.

Speaks the API that Harbor, GHCR, ECR and the reference ``registry`` server share:
blob uploads (POST then PUT with the digest), manifests pushed by digest and then by
tag, tag listing, blob downloads that resume with HTTP ``Range``. Authentication is
basic auth, a pre-issued bearer token, or the distribution token flow (a ``401`` with a
``WWW-Authenticate: Bearer realm=...`` challenge, answered by asking the realm for a
token with the basic credentials). Credentials are never put into messages or logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from typing import Any, Dict, Mapping, Optional

import requests

from components.ota import oci_layout

_ACCEPT = ", ".join([oci_layout.MANIFEST_MEDIA_TYPE, oci_layout.INDEX_MEDIA_TYPE,
                     "application/vnd.docker.distribution.manifest.v2+json"])


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(RuntimeError):
    """The registry refused or could not be reached; the message names the registry, never the secret."""


class DownloadInterrupted(RegistryError):
    """A blob download stopped part-way; what arrived is kept and the next pull resumes from it."""


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
    """

    def __init__(self, base_url: str, repository: str, username: Optional[str] = None,
                 password: Optional[str] = None, timeout: float = 30.0, token: Optional[str] = None):
        self.base_url = base_url.rstrip("/")
        self.repository = repository
        self.root = f"{self.base_url}/{repository}"
        self._session = requests.Session()
        self._basic = None
        if username is not None:
            self._basic = "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        self._authorization = f"Bearer {token}" if token else self._basic
        self._timeout = timeout

    def _send(self, method: str, url: str, headers: Optional[Mapping[str, str]], **kwargs) -> requests.Response:
        headers = dict(headers or {})
        if self._authorization:
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
            raise RegistryError(f"Registry {self.base_url} answered HTTP {response.status_code} to {method} "
                                f"{url.replace(self.base_url, '')}: {response.text[:200]}")
        return response

    def put_blob(self, data: bytes, media_type: str, annotations: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        digest = oci_layout.digest_of(data)
        exists = self._request("HEAD", f"/v2/{self.repository}/blobs/{digest}", ok=(200, 404))
        if exists.status_code == 404:
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
        sha256 = hashlib.sha256()
        with open(partial, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha256.update(block)
        if f"sha256:{sha256.hexdigest()}" != digest:
            os.remove(partial)
            raise oci_layout.LayoutError(f"Blob {digest} from {self.base_url} is corrupt: its content hashes to "
                                         f"sha256:{sha256.hexdigest()}.")
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

    def tag(self, tag: str, descriptor: Mapping[str, Any]) -> None:
        """Points ``tag`` at a manifest already pushed by digest (the last step of a push)."""
        response = self._manifest_bytes(descriptor["digest"])
        self._request("PUT", f"/v2/{self.repository}/manifests/{tag}", ok=(201,), data=response.content,
                      headers={"Content-Type": descriptor.get("mediaType", oci_layout.MANIFEST_MEDIA_TYPE)})
