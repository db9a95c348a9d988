"""Ingestion: a batch of telemetry files becomes the next span of a telemetry dataset.

A batch is a folder as a gateway uploads it: ``*.jsonl`` files of records
(``schemas/telemetry.schema.json``) and, for sampled raw windows, a ``samples/`` folder
holding the files the sample records name. The dataset is a folder of spans,
``span-1/``, ``span-2/``, ... (TFX's ``{SPAN}`` pattern reads them); each span holds

- ``summaries.jsonl``: the valid summary records (what the monitoring pipeline's ExampleGen reads),
- ``events.jsonl``: the valid detection and sample records,
- ``samples/``: the sampled files the sample records name (only those, size-checked),
- ``ingest_report.json``: counts, every skipped line's reason (file and line), the batch's digest.

Nothing in a batch can stop the batch: a malformed line is skipped and reported. Only a
batch with no readable record at all, or one already ingested, is refused (``IngestError``).
Re-ingesting the same batch (same files, same bytes) is refused with the span it became.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
from typing import Any, Dict, Iterator, List, Optional

from components.errors import PipelineInputError
from components.telemetry import records as records_lib

SPAN_PREFIX = "span-"
SUMMARIES_FILE = "summaries.jsonl"
EVENTS_FILE = "events.jsonl"
SAMPLES_DIR = "samples"
REPORT_FILE = "ingest_report.json"
BATCHES_FILE = "batches.json"
LOCK_FILE = ".ingest.lock"
MAX_FILE_BYTES = 256 * 1024 * 1024     # one telemetry file
MAX_SAMPLE_BYTES = 1024 * 1024         # one sampled raw window (a second of 16 kHz audio is 32 kB)
MAX_FILES = 10000
REASONS_KEPT = 50


class IngestError(PipelineInputError):
    """The batch cannot become a span (nothing usable in it, or already ingested); the message says why."""


class DuplicateBatch(IngestError):
    """The batch (same files, same bytes) is a span already."""


@dataclasses.dataclass
class IngestResult:
    span: int
    span_dir: str
    summaries: int
    events: int
    samples: int
    skipped: int
    problems: List[str]
    per_file: Dict[str, Dict[str, int]]

    def to_json(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def spans(dataset_dir: str) -> List[int]:
    """The dataset's span numbers, in order."""
    if not os.path.isdir(dataset_dir):
        return []
    found = (re.fullmatch(SPAN_PREFIX + r"(\d+)", name) for name in os.listdir(dataset_dir))
    return sorted(int(m.group(1)) for m in found if m)


def span_dir(dataset_dir: str, span: int) -> str:
    return os.path.join(dataset_dir, f"{SPAN_PREFIX}{span}")


def _batch_files(batch_dir: str) -> List[str]:
    if not os.path.isdir(batch_dir):
        raise IngestError(f"Telemetry batch {batch_dir} is not a folder. Pass the folder a gateway uploaded: "
                          "*.jsonl files of records (schemas/telemetry.schema.json) and a samples/ folder.")
    names = sorted(n for n in os.listdir(batch_dir) if n.endswith(".jsonl"))
    if not names:
        raise IngestError(f"Telemetry batch {batch_dir} holds no .jsonl file. A batch is one or more JSON-lines files "
                          "of records (schemas/telemetry.schema.json), at the top of the folder.")
    if len(names) > MAX_FILES:
        raise IngestError(f"Telemetry batch {batch_dir} holds {len(names)} .jsonl files, more than {MAX_FILES}; "
                          "split it into smaller batches.")
    return names


def _file_problem(path: str) -> Optional[str]:
    """Why a batch's .jsonl file is not read (None: it is a regular file small enough to read)."""
    if os.path.islink(path) or not os.path.isfile(path):
        return "not a regular file (links are not followed)"
    if os.path.getsize(path) > MAX_FILE_BYTES:
        return f"file larger than {MAX_FILE_BYTES} bytes; split it"
    return None


def _digest(batch_dir: str, names: List[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        if _file_problem(os.path.join(batch_dir, name)):
            continue   # skipped and reported by ingest(); only its name counts
        with open(os.path.join(batch_dir, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _read_batches(dataset_dir: str) -> Dict[str, int]:
    path = os.path.join(dataset_dir, BATCHES_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def ingest(batch_dir: str, dataset_dir: str, expect: records_lib.Expectations,
           max_sample_bytes: int = MAX_SAMPLE_BYTES) -> IngestResult:
    """Turns the batch at ``batch_dir`` into the next span of the dataset at ``dataset_dir``.

    Args:
        batch_dir: the uploaded folder.
        dataset_dir: the telemetry dataset (created when missing).
        expect: the classes, channels and device classes records must agree with.
        max_sample_bytes: the largest sampled file accepted.

    Returns:
        What became of the batch: the span, counts, and the skipped lines' reasons.

    Raises:
        IngestError: the batch is not a folder of .jsonl files, was ingested before, or holds no usable record.
    """
    names = _batch_files(batch_dir)
    digest = _digest(batch_dir, names)
    os.makedirs(dataset_dir, exist_ok=True)
    with _dataset_lock(dataset_dir):
        return _ingest_locked(batch_dir, names, digest, dataset_dir, expect, max_sample_bytes)


@contextlib.contextmanager
def _dataset_lock(dataset_dir: str) -> Iterator[None]:
    """One ingestion at a time per dataset, across processes (a CLI ingest beside a running server)."""
    with open(os.path.join(dataset_dir, LOCK_FILE), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ingest_locked(batch_dir: str, names: List[str], digest: str, dataset_dir: str,
                   expect: records_lib.Expectations, max_sample_bytes: int) -> IngestResult:
    batches = _read_batches(dataset_dir)
    if digest in batches:
        raise DuplicateBatch(f"Telemetry batch {batch_dir} was already ingested as span {batches[digest]} of "
                             f"{dataset_dir} (same files, same bytes); nothing was done. A new batch becomes a "
                             "new span.")
    summaries: List[Dict[str, Any]] = []
    events: List[Dict[str, Any]] = []
    problems: List[records_lib.Problem] = []
    per_file: Dict[str, Dict[str, int]] = {}
    samples_src = os.path.join(batch_dir, SAMPLES_DIR)
    sample_files: List[str] = []
    for name in names:
        path = os.path.join(batch_dir, name)
        counts = per_file.setdefault(name, {"records": 0, "skipped": 0})
        reason = _file_problem(path)
        if reason:
            problems.append(records_lib.Problem(name, 0, reason))
            counts["skipped"] += 1
            continue
        for number, (record, problem) in enumerate(records_lib.read_lines(path, name, expect), start=1):
            if problem is None and record["type"] == "sample":
                problem = _sample_problem(samples_src, record, max_sample_bytes, name, number)
                if problem is None:
                    sample_files.append(record["file"])
            if problem is not None:
                problems.append(problem)
                counts["skipped"] += 1
                continue
            counts["records"] += 1
            (summaries if record["type"] == "summary" else events).append(record)
    if not summaries and not events:
        first = "; ".join(records_lib.summarize_problems(problems, 3)) or "the files are empty"
        raise IngestError(f"Telemetry batch {batch_dir} holds no usable record ({len(problems)} skipped: {first}). "
                          "Nothing was ingested; fix the records (schemas/telemetry.schema.json) and ingest again.")
    span = (spans(dataset_dir) or [0])[-1] + 1
    final = span_dir(dataset_dir, span)
    partial = final + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.join(partial, SAMPLES_DIR))
    _write_lines(os.path.join(partial, SUMMARIES_FILE), summaries)
    _write_lines(os.path.join(partial, EVENTS_FILE), events)
    for file_name in sorted(set(sample_files)):
        shutil.copyfile(os.path.join(samples_src, file_name), os.path.join(partial, SAMPLES_DIR, file_name),
                        follow_symlinks=False)
    result = IngestResult(span=span, span_dir=final, summaries=len(summaries), events=len(events),
                          samples=len(set(sample_files)), skipped=len(problems),
                          problems=[str(p) for p in problems[:REASONS_KEPT]], per_file=per_file)
    with open(os.path.join(partial, REPORT_FILE), "w", encoding="utf-8") as f:
        json.dump({**result.to_json(), "batch": os.path.abspath(batch_dir), "digest": digest}, f, indent=2)
    os.rename(partial, final)
    batches[digest] = span
    _write_json_atomically(os.path.join(dataset_dir, BATCHES_FILE), batches)
    return result


def _sample_problem(samples_dir: str, record: Dict[str, Any], max_bytes: int, name: str,
                    number: int) -> Optional[records_lib.Problem]:
    """Why a sample record's file cannot be taken (None: it can). The schema already refused names with a path."""
    path = os.path.join(samples_dir, record["file"])
    if os.path.islink(samples_dir) or os.path.islink(path) or not os.path.isfile(path):
        return records_lib.Problem(name, number, f"sample file {record['file']} is not in the batch's "
                                                 f"{SAMPLES_DIR}/ folder (links are not followed)")
    if os.path.getsize(path) > max_bytes:
        return records_lib.Problem(name, number, f"sample file {record['file']} is larger than {max_bytes} bytes")
    return None


def _write_lines(path: str, rows: List[Dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def _write_json_atomically(path: str, value: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_span(dataset_dir: str, span: int, file_name: str = SUMMARIES_FILE) -> List[Dict[str, Any]]:
    """The records of one span's file (ingested records: already checked)."""
    with open(os.path.join(span_dir(dataset_dir, span), file_name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_all(dataset_dir: str, file_name: str = SUMMARIES_FILE) -> List[Dict[str, Any]]:
    """The records of every span of the dataset, span by span (none when it does not exist)."""
    return [row for span in spans(dataset_dir) for row in read_span(dataset_dir, span, file_name)]
