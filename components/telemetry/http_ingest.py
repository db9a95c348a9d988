"""A gateway-friendly HTTP endpoint for telemetry: each POST becomes the next span, as ``telemetry ingest``.

``POST /v1/telemetry`` with one of

- ``Content-Type: application/x-ndjson``: the records (JSON lines, ``schemas/telemetry.schema.json``);
- ``Content-Type: application/gzip`` or ``application/x-tar``: a batch folder as a (gzipped) tar, its
  ``*.jsonl`` files at the top and sampled windows in ``samples/``.

The answer is JSON: ``201`` with the span and the counts (malformed lines are skipped and listed, as
``ingest`` does), ``400`` for a batch that holds nothing usable or a tar member that would land
outside the batch (links, ``..``, absolute paths: Python's ``tarfile`` "data" filter), ``401``
without the bearer token, ``409`` for a batch ingested before, ``411``/``413`` for a missing or
too large ``Content-Length``, ``415`` for another content type. ``GET /healthz`` answers ``200``.
Everything a gateway sends is untrusted; one ingestion runs at a time (span numbers are sequential).
A server bound off loopback requires a token.
"""

from __future__ import annotations

import hmac
import http.server
import ipaddress
import json
import os
import re
import shutil
import tarfile
import tempfile
from typing import Any, Dict, Optional, Tuple

from components.errors import PipelineInputError
from components.telemetry import ingest, records as records_lib

PATH = "/v1/telemetry"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 64 * 1024 * 1024
# What a tar may unpack to: a gzipped body of 64 MiB can hold a thousand times that. Checked from the
# members' headers before anything is written; sparse members (which claim less than they write) are refused.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = ingest.MAX_FILES + 100_000   # .jsonl files, and the sampled windows in samples/
SOCKET_TIMEOUT_SECONDS = 60
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
TAR_TYPES = ("application/gzip", "application/x-gzip", "application/x-tar", "application/x-gtar")


class HttpIngestError(PipelineInputError):
    """The endpoint cannot start as asked (the message says why and the fix)."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class TooLarge(ValueError):
    """The archive would unpack to more than the endpoint takes."""


def _extract(body_path: str, content_type: str, batch_dir: str, max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> None:
    mode = "r:gz" if "gzip" in content_type else "r:"
    with tarfile.open(body_path, mode) as archive:
        members, total = [], 0
        for member in archive:   # headers only: a member's data is skipped, not written
            total += member.size
            members.append(member)
            if member.issparse() or total > max_unpacked_bytes or len(members) > MAX_MEMBERS:
                raise TooLarge(f"The batch archive unpacks to more than {max_unpacked_bytes} bytes or "
                               f"{MAX_MEMBERS} files (or holds a sparse file); nothing was ingested. Split it "
                               "into smaller batches.")
        # The "data" filter refuses links, device files, absolute paths and anything outside batch_dir.
        archive.extractall(batch_dir, members=members, filter="data")


def _public(message: str, *paths: str) -> str:
    """``message`` without the server's own paths (staging, dataset)."""
    for path, name in zip(paths, ("the uploaded batch", "the field telemetry dataset")):
        message = message.replace(path, name)
    return message


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "TelemetryServer"
    server_version = "tinyml-tfx-telemetry/1"
    timeout = SOCKET_TIMEOUT_SECONDS   # a client that stalls mid-upload gives its thread back

    def log_message(self, format: str, *args: Any) -> None:   # noqa: A002 (BaseHTTPRequestHandler's name)
        # The request line is the client's: escape control characters as the standard library's own
        # log_message does, so no one writes lines or terminal escapes into the server's log.
        self.server.log(f"{self.client_address[0]} {(format % args).translate(self._control_char_table)}")

    def _answer(self, status: int, body: Dict[str, Any]) -> None:
        data = json.dumps(body, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == HEALTH_PATH:
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": f"Nothing at {self.path}; POST batches to {PATH}."})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] != PATH:
            self._answer(404, {"error": f"Nothing at {self.path}; POST batches to {PATH}."})
            return
        try:
            status, body = self._ingest()
        except OSError as err:   # the server's disk or dataset folder, not the batch
            self.server.log(f"ingestion failed: {err}")
            status, body = 500, {"error": "The server could not store the batch (see its log); nothing was "
                                          "ingested. Send it again later."}
        self._answer(status, body)

    def _ingest(self) -> Tuple[int, Dict[str, Any]]:
        token = self.server.token
        if token is not None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return 401, {"error": "Missing or wrong bearer token (Authorization: Bearer <token>)."}
        length_text = self.headers.get("Content-Length")
        if length_text is None or not re.fullmatch(r"[0-9]{1,20}", length_text):
            return 411, {"error": "Send the batch with a Content-Length."}
        length = int(length_text)
        if length > self.server.max_body_bytes:
            return 413, {"error": f"The batch is {length} bytes, more than {self.server.max_body_bytes}; "
                                  "split it into smaller batches."}
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type not in NDJSON_TYPES + TAR_TYPES:
            return 415, {"error": f"Content-Type {content_type or '(none)'} is not taken: send JSON lines "
                                  f"({NDJSON_TYPES[0]}) or a batch folder as a tar ({', '.join(TAR_TYPES)})."}
        staging = tempfile.mkdtemp(prefix="telemetry-upload-", dir=self.server.staging_root)
        try:
            batch_dir = os.path.join(staging, "batch")
            os.makedirs(batch_dir)
            body_path = os.path.join(staging, "body")
            with open(body_path, "wb") as f:
                remaining = length
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        return 400, {"error": f"The connection closed {remaining} bytes before Content-Length."}
                    f.write(chunk)
                    remaining -= len(chunk)
            if content_type in NDJSON_TYPES:
                os.replace(body_path, os.path.join(batch_dir, "telemetry.jsonl"))
            else:
                try:
                    _extract(body_path, content_type, batch_dir, self.server.max_unpacked_bytes)
                except TooLarge as err:
                    return 413, {"error": str(err)}
                except (tarfile.TarError, OSError, EOFError) as err:
                    return 400, {"error": f"The batch archive cannot be unpacked ({err}); nothing was ingested. "
                                          "Send a tar of the batch folder: *.jsonl files and samples/, no links."}
            try:   # one ingestion at a time: ingest() locks the dataset, across threads and processes
                result = ingest.ingest(batch_dir, self.server.dataset_dir, self.server.expect)
            except ingest.DuplicateBatch as err:
                return 409, {"error": _public(str(err), batch_dir, self.server.dataset_dir)}
            except ingest.IngestError as err:
                return 400, {"error": _public(str(err), batch_dir, self.server.dataset_dir)}
            answer = result.to_json()
            answer.pop("span_dir", None)   # the server's own paths stay on the server
            return 201, answer
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class TelemetryServer(http.server.ThreadingHTTPServer):
    """The endpoint; ``serve_forever()`` runs it (``server_address`` has the port when 0 was asked)."""

    daemon_threads = True

    def __init__(self, dataset_dir: str, expect: records_lib.Expectations, host: str = "127.0.0.1",
                 port: int = 0, token: Optional[str] = None, max_body_bytes: int = MAX_BODY_BYTES,
                 staging_root: Optional[str] = None, log=lambda message: None,
                 max_unpacked_bytes: int = MAX_UNPACKED_BYTES):
        if token is None and not is_loopback(host):
            raise HttpIngestError(
                f"The telemetry endpoint would listen on {host} without a token: anyone reaching it could write "
                "spans. Pass --token-file with a secret the gateways send as 'Authorization: Bearer <token>', "
                "or bind to 127.0.0.1 behind your own authenticating proxy.")
        if token is not None and not token.strip():
            raise HttpIngestError("The token is empty; put a secret in the token file.")
        self.dataset_dir = dataset_dir
        self.expect = expect
        self.token = token.strip() if token is not None else None
        self.max_body_bytes = max_body_bytes
        self.max_unpacked_bytes = max_unpacked_bytes
        self.staging_root = staging_root or tempfile.gettempdir()
        self.log = log
        super().__init__((host, port), _Handler)
