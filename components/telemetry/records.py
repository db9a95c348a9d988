"""Reading telemetry records: JSON lines checked against ``schemas/telemetry.schema.json`` and the config.

Telemetry comes from devices through gateways: untrusted. Each line is checked on its own
(size, JSON, the schema of its ``type``, then against what the pipeline knows: the classes,
the feature channels, the device classes, the counts adding up); a bad line is skipped with a
reason naming the file and the line, and never stops the others.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import jsonschema

import schemas

SCHEMA_FILE = "telemetry.schema.json"
MAX_LINE_BYTES = 64 * 1024          # a summary of 64 channels is about 3 kB
RECORD_TYPES = ("summary", "detection", "sample")


@dataclasses.dataclass(frozen=True)
class Expectations:
    """What a record must agree with: the model's classes, the family's channels, the fleet's boards."""

    labels: Tuple[str, ...]
    channels: Tuple[str, ...]
    device_classes: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Problem:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def _validators() -> Dict[str, jsonschema.Draft202012Validator]:
    with open(schemas.SCHEMA_DIR / SCHEMA_FILE, encoding="utf-8") as f:
        document = json.load(f)
    out = {}
    for variant in document["oneOf"]:
        name = variant["properties"]["type"]["const"]
        out[name] = jsonschema.Draft202012Validator({**variant, "$defs": document["$defs"]},
                                                    format_checker=jsonschema.FormatChecker())
    return out


_VALIDATORS: Optional[Dict[str, jsonschema.Draft202012Validator]] = None


def validators() -> Dict[str, jsonschema.Draft202012Validator]:
    global _VALIDATORS
    if _VALIDATORS is None:
        _VALIDATORS = _validators()
    return _VALIDATORS


def _schema_problem(record: Dict[str, Any]) -> Optional[str]:
    kind = record.get("type")
    if kind not in RECORD_TYPES:
        return f"field 'type' is {json.dumps(kind)[:40]}; a record is one of {', '.join(RECORD_TYPES)}"
    errors = sorted(validators()[kind].iter_errors(record), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    error = errors[0]
    field = ".".join(str(p) for p in error.absolute_path) or "(record)"
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"{kind} record, field '{field}': {message}"


def _summary_problem(record: Dict[str, Any], expect: Expectations) -> Optional[str]:
    if tuple(record["channels"]) != expect.channels:
        return (f"summary record's channels ({', '.join(record['channels'][:4])}...: {len(record['channels'])}) are "
                f"not the model's input channels ({len(expect.channels)}: {', '.join(expect.channels[:4])}...)")
    for field in ("feature_mean", "feature_var"):
        values = record[field]
        if len(values) != len(expect.channels):
            return f"summary record's {field} has {len(values)} values for {len(expect.channels)} channels"
        if not all(_finite(v) for v in values):
            return f"summary record's {field} holds a NaN, infinite or out-of-range value"
    for field in ("top_class_counts", "detections", "confirmed"):
        unknown = sorted(set(record.get(field, {})) - set(expect.labels))
        if unknown:
            return (f"summary record's {field} names class(es) the model does not have: {', '.join(unknown[:3])} "
                    f"(its classes: {', '.join(expect.labels)})")
    if sum(record["top_class_counts"].values()) != record["windows"]:
        return (f"summary record's top_class_counts add up to {sum(record['top_class_counts'].values())}, not to "
                f"windows ({record['windows']})")
    if sum(record["score_histogram"]) != record["windows"]:
        return f"summary record's score_histogram adds up to {sum(record['score_histogram'])}, not to windows ({record['windows']})"
    detections = record.get("detections", {})
    if sum(detections.values()) > record["windows"]:
        return (f"summary record's detections add up to {sum(detections.values())}, more than its inferences "
                f"(windows, {record['windows']}): post-processing reports at most one command per inference")
    over = sorted(label for label, n in record.get("confirmed", {}).items() if n > detections.get(label, 0))
    if over:
        return (f"summary record's confirmed count of '{over[0][:64]}' is more than its detections "
                f"({record['confirmed'][over[0]]} > {detections.get(over[0], 0)}): a confirmation is of a detected command")
    return None


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:   # a JSON integer with hundreds of digits
        return False


# The schema's patterns end in "$", which Python's re (jsonschema's engine) also matches before a final
# newline: "dev0\n" would pass and split a file list in two. These fields are names: no control characters.
NAME_FIELDS = ("device_id", "device_class", "model_version", "file")


def check_record(record: Any, expect: Expectations) -> Optional[str]:
    """None when ``record`` is a usable telemetry record, else the reason it is not (one line)."""
    if not isinstance(record, dict):
        return f"a record is a JSON object, not {type(record).__name__}"
    problem = _schema_problem(record)
    if problem:
        return problem
    for field in NAME_FIELDS:
        value = record.get(field)
        if isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
            return f"{record['type']} record, field '{field}': holds a control character (a newline?)"
    if record["device_class"] not in expect.device_classes:
        return (f"device_class '{record['device_class']}' is not a board this model was released for "
                f"({', '.join(expect.device_classes)})")
    if record["type"] == "summary":
        return _summary_problem(record, expect)
    if record["type"] == "detection" and record["label"] not in expect.labels:
        return f"detection of '{record['label'][:64]}', which is not one of the model's classes"
    if record["type"] == "sample":
        for field in ("label", "predicted"):
            if field in record and record[field] not in expect.labels:
                return f"sample's {field} '{record[field][:64]}' is not one of the model's classes"
    return None


def read_lines(path: str, display: str, expect: Expectations
               ) -> Iterator[Tuple[Optional[Dict[str, Any]], Optional[Problem]]]:
    """Yields (record, None) for every usable line of the JSON-lines file ``path``, (None, problem) for
    every other (``display`` names the file in problems); blank lines are ignored."""
    with open(path, "rb") as f:
        for number, raw in enumerate(_lines(f), start=1):
            if raw is None:
                yield None, Problem(display, number, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
            except (UnicodeDecodeError, ValueError) as err:
                yield None, Problem(display, number, f"not a JSON object ({str(err)[:120]})")
                continue
            except RecursionError:
                yield None, Problem(display, number, "not a JSON object (nested too deeply)")
                continue
            reason = check_record(record, expect)
            yield (record, None) if reason is None else (None, Problem(display, number, reason))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _lines(f) -> Iterator[Optional[bytes]]:
    """The file's lines, each None when longer than MAX_LINE_BYTES (read in bounded pieces)."""
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):   # skip the rest of the overlong line
                line = f.readline(MAX_LINE_BYTES + 1)
            yield None
            continue
        yield line


def summarize_problems(problems: Sequence[Problem], shown: int = 5) -> List[str]:
    """The first ``shown`` problems, one line each."""
    return [str(p) for p in problems[:shown]]
