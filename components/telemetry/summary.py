"""The device's telemetry summary, in Python: what ``telemetry_summary.h`` computes, operation for operation.

The fleet simulator and the reference telemetry use this class; a test compiles the header
with g++, feeds both the same int8 frames, scores and detections, and requires identical
figures. Sums are integers, so the only rounding is the final division, done in IEEE doubles
in the same order as the C code.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence

import numpy as np

SCORE_BINS = 16
SCORE_BIN_SHIFT = 4
HEADER_FILE = "telemetry_summary.h"
MAX_CHANNELS = 64   # the header's compiled defaults
MAX_CLASSES = 32


def score_bin(score: int) -> int:
    """The histogram bin of an int8 top score: 16 bins of 16 over -128..127."""
    return (int(score) + 128) >> SCORE_BIN_SHIFT


@dataclasses.dataclass
class SummaryAccumulator:
    """One period's summary on one device (``TelemetrySummary`` in the header).

    ``reports_confirmations``: the device's application has a confirmation signal, so its record
    carries ``confirmed`` (even when all zero); without one the field is left out.
    """

    channels: int
    classes: int
    reports_confirmations: bool = True
    frames: int = 0
    windows: int = 0
    feature_sum: np.ndarray = dataclasses.field(default=None)          # int64 [channels]
    feature_sum_squares: np.ndarray = dataclasses.field(default=None)  # int64 [channels]
    top_class_counts: np.ndarray = dataclasses.field(default=None)     # int64 [classes]
    detections: np.ndarray = dataclasses.field(default=None)           # int64 [classes]
    confirmed: np.ndarray = dataclasses.field(default=None)            # int64 [classes]
    score_histogram: np.ndarray = dataclasses.field(default=None)      # int64 [SCORE_BINS]

    def __post_init__(self) -> None:
        if not (1 <= self.channels <= MAX_CHANNELS and 1 <= self.classes <= MAX_CLASSES):
            raise ValueError(f"A summary holds 1..{MAX_CHANNELS} channels and 1..{MAX_CLASSES} classes, "
                             f"not {self.channels} and {self.classes}.")
        self.feature_sum = np.zeros(self.channels, np.int64)
        self.feature_sum_squares = np.zeros(self.channels, np.int64)
        self.top_class_counts = np.zeros(self.classes, np.int64)
        self.detections = np.zeros(self.classes, np.int64)
        self.confirmed = np.zeros(self.classes, np.int64)
        self.score_histogram = np.zeros(SCORE_BINS, np.int64)

    def add_frames(self, frames: np.ndarray) -> None:
        """Adds int8 feature frames [n, channels] (``telemetry_summary_add_frame`` once per row)."""
        values = np.asarray(frames, np.int8).reshape(-1, self.channels).astype(np.int64)
        self.feature_sum += values.sum(axis=0)
        self.feature_sum_squares += np.square(values).sum(axis=0)
        self.frames += len(values)

    def add_windows(self, scores: np.ndarray) -> None:
        """Adds inferences' int8 scores [n, classes] (``telemetry_summary_add_window`` once per row)."""
        values = np.asarray(scores, np.int8).reshape(-1, self.classes)
        if not len(values):
            return
        top = np.argmax(values, axis=1)   # the first maximum, as the C loop's strict '>'
        np.add.at(self.top_class_counts, top, 1)
        top_scores = values[np.arange(len(values)), top].astype(np.int64)
        np.add.at(self.score_histogram, (top_scores + 128) >> SCORE_BIN_SHIFT, 1)
        self.windows += len(values)

    def add_detection(self, class_index: int) -> None:
        if 0 <= class_index < self.classes:
            self.detections[class_index] += 1

    def add_confirmation(self, class_index: int) -> None:
        """The application confirmed a command of ``class_index`` this period detected (never more than detected)."""
        if 0 <= class_index < self.classes and self.confirmed[class_index] < self.detections[class_index]:
            self.confirmed[class_index] += 1

    def means(self) -> List[float]:
        if not self.frames:
            return [0.0] * self.channels
        return [float(s) / float(self.frames) for s in self.feature_sum]

    def variances(self) -> List[float]:
        if not self.frames:
            return [0.0] * self.channels
        n = float(self.frames)
        return [(float(q) * n - float(s) * float(s)) / (n * n)
                for s, q in zip(self.feature_sum, self.feature_sum_squares)]

    def record(self, labels: Sequence[str], channel_names: Sequence[str], **identity) -> Dict:
        """The period's summary record (``schemas/telemetry.schema.json``, type ``summary``); ``identity``
        gives device_id, device_class, model_version, period, period_start and period_seconds."""
        if len(labels) != self.classes or len(channel_names) != self.channels:
            raise ValueError(f"{len(labels)} labels and {len(channel_names)} channel names for a summary of "
                             f"{self.classes} classes and {self.channels} channels.")
        return {
            "type": "summary", **identity,
            "windows": int(self.windows), "frames": int(self.frames),
            "top_class_counts": {label: int(c) for label, c in zip(labels, self.top_class_counts)},
            "detections": {label: int(c) for label, c in zip(labels, self.detections) if c},
            **({"confirmed": {label: int(c) for label, c in zip(labels, self.confirmed) if c}}
               if self.reports_confirmations else {}),
            "score_histogram": [int(c) for c in self.score_histogram],
            "channels": list(channel_names),
            "feature_mean": self.means(),
            "feature_var": self.variances(),
        }
