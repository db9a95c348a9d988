"""The gateway HTTP endpoint on loopback: batches become spans, and what a hostile or broken gateway sends
loses nothing and writes nothing outside the dataset."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import urllib.error
import urllib.request

import pytest

from components.telemetry import http_ingest, ingest
from pipeline import config as config_lib, monitoring
from tests.support.telemetry import device_records


@pytest.fixture()
def endpoint(tmp_path):
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(str(tmp_path / "work"))
    expect = monitoring.expectations(config)
    dataset = str(tmp_path / "field")
    server = http_ingest.TelemetryServer(dataset, expect, token="s3cret", staging_root=str(tmp_path / "staging"))
    os.makedirs(tmp_path / "staging")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", dataset, expect, tmp_path
    server.shutdown()
    server.server_close()


def _post(url, body, content_type="application/x-ndjson", token="s3cret", path=http_ingest.PATH):
    request = urllib.request.Request(url + path, data=body, method="POST", headers={"Content-Type": content_type})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _lines(records):
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_a_batch_becomes_the_next_span_and_a_repeat_is_refused(endpoint):
    url, dataset, expect, _ = endpoint
    records = device_records(expect.labels, expect.channels, 5, 0, seed=3)
    body = _lines(records) + b"{not json\n"
    status, answer = _post(url, body)
    assert status == 201, answer
    assert answer["span"] == 1 and answer["summaries"] == 5 and answer["skipped"] == 1
    assert "telemetry.jsonl:6" in answer["problems"][0] and "span_dir" not in answer
    assert len(ingest.read_span(dataset, 1)) == 5
    status, answer = _post(url, body)
    assert status == 409 and "already ingested as span 1" in answer["error"]
    status, answer = _post(url, _lines(device_records(expect.labels, expect.channels, 2, 1, seed=3)))
    assert status == 201 and answer["span"] == 2


def test_a_tar_batch_brings_its_samples_and_links_or_escapes_are_refused(endpoint):
    url, dataset, expect, tmp_path = endpoint
    summary = device_records(expect.labels, expect.channels, 1, 0, seed=4)[0]
    sample = {"type": "sample", "device_id": summary["device_id"], "device_class": summary["device_class"],
              "model_version": summary["model_version"], "time": "2026-12-01T10:00:00Z", "period": 0,
              "file": "dev-0000_000.wav", "label": expect.labels[2], "label_source": "a person"}

    def archive(members, gz=True):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tar:
            for name, data, kind in members:
                info = tarfile.TarInfo(name)
                if kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    good = archive([("telemetry.jsonl", _lines([summary, sample]), "file"),
                    ("samples/dev-0000_000.wav", b"RIFF" + b"\0" * 60, "file")])
    status, answer = _post(url, good, "application/gzip")
    assert status == 201, answer
    assert answer["samples"] == 1 and answer["events"] == 1
    assert os.path.exists(os.path.join(dataset, "span-1", "samples", "dev-0000_000.wav"))
    for members in ([("../escaped.jsonl", _lines([summary]), "file")],
                    [("telemetry.jsonl", "/etc/passwd", "link")]):
        status, answer = _post(url, archive(members, gz=False), "application/x-tar")
        assert status == 400 and "cannot be unpacked" in answer["error"], answer
    # an absolute member lands inside the upload (the leading / stripped), not at the top: nothing to ingest
    status, answer = _post(url, archive([("/tmp/absolute-upload.jsonl", _lines([summary]), "file")]), "application/gzip")
    assert status == 400 and "the uploaded batch holds no .jsonl file" in answer["error"], answer
    assert "staging" not in answer["error"]                   # the server's paths are not told
    assert not os.path.exists(tmp_path / "escaped.jsonl") and not os.path.exists("/tmp/absolute-upload.jsonl")
    assert ingest.spans(dataset) == [1]
    status, answer = _post(url, b"\x1f\x8b not a gzip", "application/gzip")
    assert status == 400 and "cannot be unpacked" in answer["error"]


def test_the_endpoint_refuses_strangers_wrong_types_and_oversized_batches(endpoint):
    url, dataset, expect, tmp_path = endpoint
    body = _lines(device_records(expect.labels, expect.channels, 1, 0, seed=5))
    assert _post(url, body, token=None)[0] == 401
    assert _post(url, body, token="guess")[0] == 401
    status, answer = _post(url, body, content_type="text/csv")
    assert status == 415 and "application/x-ndjson" in answer["error"]
    assert _post(url, body, path="/v1/other")[0] == 404
    status, answer = _post(url, b"\n\n")
    assert status == 400 and "holds no usable record" in answer["error"]
    with urllib.request.urlopen(url + http_ingest.HEALTH_PATH, timeout=10) as response:
        assert response.status == 200
    assert ingest.spans(dataset) == []
    assert os.listdir(tmp_path / "staging") == []          # uploads are staged and always removed


def test_oversized_batches_are_refused_before_they_are_read(tmp_path):
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(str(tmp_path / "work"))
    server = http_ingest.TelemetryServer(str(tmp_path / "field"), monitoring.expectations(config), max_body_bytes=100)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, answer = _post(f"http://127.0.0.1:{server.server_address[1]}", b"x" * 101, token=None)
        assert status == 413 and "more than 100" in answer["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_an_archive_that_unpacks_too_large_is_refused_before_anything_is_written(tmp_path):
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(str(tmp_path / "work"))
    expect = monitoring.expectations(config)
    staging = tmp_path / "staging"
    staging.mkdir()
    server = http_ingest.TelemetryServer(str(tmp_path / "field"), expect, staging_root=str(staging),
                                         max_unpacked_bytes=64 * 1024)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("telemetry.jsonl")
            info.size = 4 * 1024 * 1024   # newlines compress about a thousandfold
            tar.addfile(info, io.BytesIO(b"\n" * info.size))
        assert len(buffer.getvalue()) < 64 * 1024
        status, answer = _post(url, buffer.getvalue(), "application/gzip", token=None)
        assert status == 413 and "unpacks to more than 65536 bytes" in answer["error"], answer
        assert os.listdir(staging) == [] and ingest.spans(str(tmp_path / "field")) == []
    finally:
        server.shutdown()
        server.server_close()


def test_odd_headers_and_request_lines_get_answers_and_clean_log_lines(tmp_path):
    import socket

    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(str(tmp_path / "work"))
    logged = []
    server = http_ingest.TelemetryServer(str(tmp_path / "field"), monitoring.expectations(config), log=logged.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def raw(request: bytes) -> bytes:
        with socket.create_connection(server.server_address, timeout=10) as connection:
            connection.sendall(request)
            return connection.recv(4096)

    try:
        answer = raw(f"POST {http_ingest.PATH} HTTP/1.0\r\nContent-Length: \u00b2\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.0 411"), answer
        raw(b"GET /x\x1b[2Jforged HTTP/1.0\r\n\r\n")
        assert logged and not any("\x1b" in line for line in logged)
        assert any("\\x1b[2Jforged" in line for line in logged)
    finally:
        server.shutdown()
        server.server_close()


def test_an_endpoint_off_loopback_needs_a_token(tmp_path):
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(str(tmp_path / "work"))
    with pytest.raises(http_ingest.HttpIngestError, match="without a token"):
        http_ingest.TelemetryServer(str(tmp_path / "field"), monitoring.expectations(config), host="0.0.0.0")
    assert http_ingest.is_loopback("127.0.0.1") and http_ingest.is_loopback("::1")
    assert not http_ingest.is_loopback("10.0.0.5")


def test_the_serve_verb_refuses_to_listen_off_loopback_without_a_token(tmp_path):
    from click.testing import CliRunner

    from pipeline.ui.cli import main

    result = CliRunner().invoke(main, ["telemetry", "serve", "--workdir", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "--token-file" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["telemetry", "serve", "--workdir", str(tmp_path), "--token-file",
                                       str(tmp_path / "absent")])
    assert result.exit_code != 0 and "cannot be read" in " ".join(result.output.split())  # wrapped by path length
