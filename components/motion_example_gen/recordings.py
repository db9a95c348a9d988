"""Motion recordings from data loggers: one CSV file per recording, cut into fixed windows.

The layout (the audio layout's folder-per-label convention)::

    ROOT/<label>/<recording>.csv   header row naming the columns, e.g. timestamp,ax,ay,az,gx,gy,gz
    ROOT/validation_list.txt       optional: relative paths of the eval split's recordings
    ROOT/testing_list.txt          optional: relative paths of the test split's recordings

Without the lists, a recording's split comes from a hash of its subject (the file name
before ``_nohash_``, else the whole name), 80/10/10, so one subject never spans two
splits. A window never spans two recordings, and every window of a recording goes to
that recording's split. A file with missing channels, non-numeric values, timestamps
that disagree with the configured sampling rate, or fewer samples than one window is
skipped with the reason. Plain library: no TFX, no Beam.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
import posixpath
from typing import List, Sequence, Tuple

import numpy as np

from components.ingestion import EVAL, SPLIT_LISTS, TEST, TRAIN, Filesystem, read_split_lists, speaker_of

RECORDING_EXTENSION = ".csv"
_HASH_BUCKETS = {EVAL: (80, 90), TEST: (90, 100)}  # of 100; the rest is train


class LayoutError(ValueError):
    """The dataset folder does not have the motion layout."""


class RecordingError(ValueError):
    """A recording that cannot be used; the message says why (the file is skipped, not fatal)."""


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """How recordings are read and cut.

    Attributes:
        channels: the columns that form a sample, in model order (e.g. ax, ay, az, gx, gy, gz).
        sample_rate: samples per second the recordings must have.
        window: samples per window.
        hop: samples between the starts of consecutive windows.
        timestamp_column: the column holding each sample's time.
        timestamp_scale: seconds per timestamp unit (1 for seconds, 0.001 for milliseconds).
        rate_tolerance: how far (as a fraction) the timestamps' rate may be from ``sample_rate``.
    """

    channels: Tuple[str, ...]
    sample_rate: float
    window: int
    hop: int
    timestamp_column: str = "timestamp"
    timestamp_scale: float = 1.0
    rate_tolerance: float = 0.05


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingRef:
    """One recording to read: its path below the root, its label and its split."""

    relative: str
    label: str
    split: str


def check_layout(root: str, labels: Sequence[str], fs: Filesystem) -> None:
    """Raises LayoutError, naming what is missing, when ``root`` is not a usable dataset."""
    if not fs.isdir(root):
        raise LayoutError(f"The dataset folder {root} does not exist.")
    missing = [label for label in labels if not fs.isdir(posixpath.join(root, label))]
    if missing:
        raise LayoutError(f"The dataset folder {root} has no folder for the label(s) {', '.join(missing)} named in "
                          "the config's data.labels. Add one folder of CSV recordings per label, or remove the "
                          "labels from the config.")


def _hash_split(relative: str) -> str:
    subject = speaker_of(relative)
    bucket = int(hashlib.sha256(subject.encode()).hexdigest(), 16) % 100
    for split, (low, high) in _HASH_BUCKETS.items():
        if low <= bucket < high:
            return split
    return TRAIN


def plan_recordings(root: str, labels: Sequence[str], fs: Filesystem) -> List[RecordingRef]:
    """Every recording of the wanted labels with its split (from the lists, else by subject hash)."""
    listed = read_split_lists(root, fs)
    lists_present = any(fs.exists(posixpath.join(root, name)) for name in SPLIT_LISTS.values())
    plan = []
    for label in labels:
        folder = posixpath.join(root, label)
        for name in sorted(fs.listdir(folder)):
            if not name.lower().endswith(RECORDING_EXTENSION):  # data loggers write .CSV too
                continue
            relative = f"{label}/{name}"
            split = listed.get(relative, TRAIN) if lists_present else _hash_split(relative)
            plan.append(RecordingRef(relative, label, split))
    return plan


def _number(value: str, line: int, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise RecordingError(f"line {line}: column '{column}' is '{value}', not a number") from None
    if not math.isfinite(number):
        raise RecordingError(f"line {line}: column '{column}' is '{value}', not a finite number")
    return number


def decode_recording(data: bytes, encoding: str = "auto") -> str:
    """A recording's bytes as text, as data loggers write them.

    UTF-8 with or without a byte-order mark by default; when the bytes are not UTF-8,
    Windows-1252 (what spreadsheet exports on Windows write), which covers Latin-1 text in
    headers and comments. ``encoding`` names another codec explicitly (``motion.encoding``).

    Raises:
        RecordingError: the bytes are not text in the named encoding.
    """
    if encoding != "auto":
        try:
            return data.decode(encoding).lstrip("\ufeff")
        except (UnicodeDecodeError, LookupError) as err:
            raise RecordingError(f"not {encoding} text ({err}); set motion.encoding to the file's encoding") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as err:
            raise RecordingError(f"neither UTF-8 nor Windows-1252 text ({err.reason} at byte {err.start}); set "
                                 "motion.encoding to the file's encoding") from None


def parse_recording(text: str, spec: WindowSpec) -> np.ndarray:
    """The recording's samples, ``[samples, channels]`` float32, checked against ``spec``.

    Raises:
        RecordingError: missing columns, a non-numeric value, timestamps that do not increase
            or disagree with ``spec.sample_rate``, or fewer samples than one window.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))  # a BOM, CRLF or CR line ends: all fine
    header = [column.strip() for column in next(reader, [])]
    wanted = (spec.timestamp_column,) + tuple(spec.channels)
    missing = [column for column in wanted if column not in header]
    if missing:
        raise RecordingError(f"missing column(s) {', '.join(missing)} (the header has {', '.join(header) or 'nothing'})")
    indexes = [header.index(column) for column in wanted]
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise RecordingError(f"line {line}: {len(row)} values for {len(header)} columns")
        rows.append([_number(row[i].strip(), line, column) for i, column in zip(indexes, wanted)])
    if len(rows) < spec.window:
        raise RecordingError(f"{len(rows)} samples, fewer than one window of {spec.window} "
                             f"({spec.window / spec.sample_rate:.2f} s at {spec.sample_rate:g} Hz)")
    values = np.asarray(rows, dtype=np.float64)
    steps = np.diff(values[:, 0]) * spec.timestamp_scale
    if np.any(steps <= 0):
        line = int(np.argmax(steps <= 0)) + 3
        raise RecordingError(f"timestamps do not increase at line {line}")
    measured = 1.0 / float(np.median(steps))
    if abs(measured - spec.sample_rate) > spec.rate_tolerance * spec.sample_rate:
        raise RecordingError(f"its timestamps give {measured:.1f} Hz, not the configured {spec.sample_rate:g} Hz "
                             "(data.sample_rate; timestamps in motion.timestamp_unit)")
    return values[:, 1:].astype(np.float32)


def windows(samples: np.ndarray, spec: WindowSpec) -> List[np.ndarray]:
    """Consecutive windows of ``spec.window`` samples, ``spec.hop`` apart, all inside the recording."""
    return [samples[start:start + spec.window] for start in range(0, len(samples) - spec.window + 1, spec.hop)]

