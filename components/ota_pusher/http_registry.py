"""An OCI registry over HTTP(S) (the CNCF distribution API), with the same interface as OciLayout.

Speaks the API that Harbor, GHCR, ECR and the reference ``registry`` server share:
blob uploads (POST then PUT with the digest), manifests pushed by digest and then by
tag, tag listing. Basic auth; credentials are never put into messages or logs.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

import requests

from components.ota_pusher import oci_layout

_ACCEPT = ", ".join([oci_layout.MANIFEST_MEDIA_TYPE, oci_layout.INDEX_MEDIA_TYPE,
                     "application/vnd.docker.distribution.manifest.v2+json"])


class RegistryError(RuntimeError):
    """The registry refused or could not be reached; the message names the registry, never the secret."""


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
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        elif username is not None:
            self._session.auth = (username, password or "")
        self._timeout = timeout

    def _request(self, method: str, url: str, ok=(200,), **kwargs) -> requests.Response:
        if url.startswith("/"):
            url = self.base_url + url
        try:
            response = self._session.request(method, url, timeout=self._timeout, **kwargs)
        except requests.RequestException as err:
            raise RegistryError(f"Registry {self.base_url} is unreachable ({type(err).__name__}). Check the URL "
                                "and that the registry is running.") from None
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
