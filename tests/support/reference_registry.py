"""Start the reference OCI registry server (Debian's docker-registry) on loopback.

For tests and benchmarks: the real server, not a fake. ``scripts/devenv.sh`` installs
``docker-registry`` and ``htpasswd`` (apache2-utils) in the project's environment.
Two ways to authenticate, as production registries do: htpasswd (basic auth), or the
distribution token flow, where the registry trusts JWTs from a token service — here a
small issuer in this process that checks the same user and password and signs ES256
tokens with a certificate the registry is configured to trust (what Harbor's or Docker
Hub's auth service does).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from typing import Dict, Iterator, List

import requests

TOKEN_SERVICE_NAME = "tinyml-tfx-registry"
TOKEN_ISSUER = "tinyml-tfx-token-issuer"


class RegistryUnavailable(RuntimeError):
    """The server did not start."""


class RegistryNotInstalled(RegistryUnavailable):
    """docker-registry or htpasswd is not installed."""


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _TokenIssuer:
    """Signs registry bearer tokens (ES256 JWT with the x5c header the registry verifies)."""

    def __init__(self, workdir: str):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + datetime.timedelta(days=1))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                       .sign(self._key, hashes.SHA256()))
        self.certificate_path = os.path.join(workdir, "token-issuer.crt")
        with open(self.certificate_path, "wb") as f:
            f.write(certificate.public_bytes(serialization.Encoding.PEM))
        self._x5c = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]

    def token(self, subject: str, scopes: List[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        access: List[Dict[str, object]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": self._x5c}
        claims = {"iss": TOKEN_ISSUER, "sub": subject, "aud": TOKEN_SERVICE_NAME, "iat": now, "nbf": now - 10,
                  "exp": now + 300, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = utils.decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@contextlib.contextmanager
def _token_service(issuer: _TokenIssuer, user: str, password: str) -> Iterator[str]:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.end_headers()
                return
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            body = json.dumps({"token": issuer.token(user, scopes), "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serve(workdir: str, user: str, password: str, start_timeout: float = 20.0,
          auth: str = "htpasswd", readonly: bool = False, host: str = "127.0.0.1",
          realm_host: str = "127.0.0.1") -> Iterator[str]:
    """Runs ``docker-registry serve`` on a free loopback port; yields its base URL.

    Args:
        auth: ``htpasswd`` (basic auth) or ``token`` (bearer tokens from a token service
            that accepts ``user``/``password``).
        readonly: start it in the distribution server's read-only maintenance mode (pulls
            work, every write is refused), over the storage ``workdir`` already holds.
        host: the address it listens on (loopback unless a test needs another interface).
        realm_host: the host name the token realm is announced with (``token`` auth); the
            issuer itself always listens on 127.0.0.1.
    """
    binary, htpasswd = shutil.which("docker-registry"), shutil.which("htpasswd")
    if binary is None or htpasswd is None:
        missing = [name for name, path in (("docker-registry", binary), ("htpasswd", htpasswd)) if path is None]
        raise RegistryNotInstalled(f"{' and '.join(missing)} not installed")
    if auth not in ("htpasswd", "token"):
        raise ValueError(f"auth must be 'htpasswd' or 'token', not {auth!r}")
    os.makedirs(workdir, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if auth == "token":
            issuer = _TokenIssuer(workdir)
            realm = stack.enter_context(_token_service(issuer, user, password)).replace("127.0.0.1", realm_host, 1)
            auth_config = (f"  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE_NAME}\n"
                           f"    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {issuer.certificate_path}\n")
        else:
            entry = subprocess.run([htpasswd, "-Bbn", user, password], check=True, capture_output=True,
                                   text=True).stdout
            with open(os.path.join(workdir, "htpasswd"), "w") as f:
                f.write(entry)
            auth_config = f"  htpasswd:\n    realm: tinyml-tfx\n    path: {workdir}/htpasswd\n"
        port = _free_port(host)
        config = os.path.join(workdir, "config.yml")
        with open(config, "w") as f:
            maintenance = "  maintenance:\n    readonly:\n      enabled: true\n" if readonly else ""
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {workdir}/data\n"
                    f"{maintenance}http:\n  addr: {host}:{port}\nauth:\n{auth_config}")
        server = subprocess.Popen([binary, "serve", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://{host}:{port}"
        try:
            deadline = time.time() + start_timeout
            while True:
                try:
                    if requests.get(url + "/v2/", timeout=1).status_code == 401:
                        break
                except requests.RequestException:
                    pass
                if server.poll() is not None or time.time() > deadline:
                    raise RegistryUnavailable(f"docker-registry did not answer on {url} within {start_timeout:.0f} s "
                                              f"(config {config}).")
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)
