"""Streaming metrics: detections against ground truth, false accepts per hour, false rejects, delay.

A keyword occurrence is *found* by the first unmatched detection of the same class that comes
no earlier than the occurrence's start and no later than its end plus ``tolerance_ms`` (the
averaging window makes every detection late; TensorFlow's speech_commands
``accuracy_utils.cc`` matches within a tolerance the same way, on a single time per word).
Every other keyword detection is a *false accept*: during noise, during other speech, on the
wrong keyword, or a second detection of one occurrence. Detections of the non-keyword classes
(silence, unknown) are what the firmware ignores, and are not counted.

- false accepts per hour = false accepts / hours of audio;
- false-reject rate (FRR) = keyword occurrences not found / keyword occurrences;
- detection delay = detection time - the occurrence's end.

The DET curve is FRR against false accepts per hour for every detection threshold (0..255,
RecognizeCommands' uint8); the operating point is the threshold with the lowest FRR among
those within ``max_false_accepts_per_hour`` (the highest such threshold on a tie), and the
model is blessed when that FRR is within ``max_false_reject_rate``. Plain library.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from components.streaming_evaluator import recognize

SECONDS_PER_HOUR = 3600.0


@dataclasses.dataclass(frozen=True)
class Event:
    """One labelled stretch of a stream: a keyword occurrence, or other speech."""

    label: str
    start_ms: int
    end_ms: int
    snr_db: Optional[float] = None
    speaker: str = ""


@dataclasses.dataclass(frozen=True)
class Detection:
    """A new command of a keyword class, as RecognizeCommands reports it."""

    time_ms: int
    label: str
    score: int


@dataclasses.dataclass(frozen=True)
class ScoredStream:
    """One stream after inference: its ground truth and the window averages of its scores."""

    name: str
    duration_s: float
    events: Tuple[Event, ...]
    averaged: recognize.Averaged


@dataclasses.dataclass
class Matching:
    """Detections of one threshold against the ground truth of one or more streams."""

    found: List[Tuple[Event, Detection]] = dataclasses.field(default_factory=list)
    missed: List[Event] = dataclasses.field(default_factory=list)
    false_accepts: List[Tuple[Detection, str]] = dataclasses.field(default_factory=list)  # (detection, what it fell on)

    def extend(self, other: "Matching") -> None:
        self.found += other.found
        self.missed += other.missed
        self.false_accepts += other.false_accepts


def detections(stream: ScoredStream, labels: Sequence[str], keywords: Sequence[str], threshold: int,
               suppression_ms: int) -> List[Detection]:
    """The keyword detections of ``stream`` at ``threshold``."""
    wanted = set(keywords)
    return [Detection(time, labels[top], score)
            for time, top, score in recognize.commands(stream.averaged, threshold, suppression_ms)
            if labels[top] in wanted]


def _context(time_ms: int, events: Sequence[Event], keywords: Sequence[str], tolerance_ms: int) -> str:
    """What a false accept fell on: another keyword, other speech, or noise."""
    for event in events:
        if event.start_ms <= time_ms <= event.end_ms + tolerance_ms:
            return f"keyword '{event.label}'" if event.label in keywords else "other speech"
    return "noise"


def match(events: Sequence[Event], found: Sequence[Detection], keywords: Sequence[str], tolerance_ms: int) -> Matching:
    """Pairs detections with keyword occurrences (see the module docstring)."""
    result = Matching()
    occurrences = sorted((e for e in events if e.label in keywords), key=lambda e: (e.start_ms, e.end_ms))
    starts = [e.start_ms for e in occurrences]
    taken = [False] * len(occurrences)
    for detection in sorted(found, key=lambda d: d.time_ms):
        last = bisect.bisect_right(starts, detection.time_ms)
        match_index = next((i for i in range(last) if not taken[i] and occurrences[i].label == detection.label
                            and detection.time_ms <= occurrences[i].end_ms + tolerance_ms), None)
        if match_index is None:
            result.false_accepts.append((detection, _context(detection.time_ms, events, keywords, tolerance_ms)))
        else:
            taken[match_index] = True
            result.found.append((occurrences[match_index], detection))
    result.missed = [e for e, hit in zip(occurrences, taken) if not hit]
    return result


def keyword_count(streams: Sequence[ScoredStream], keywords: Sequence[str]) -> int:
    return sum(1 for s in streams for e in s.events if e.label in keywords)


def hours(streams: Sequence[ScoredStream]) -> float:
    return sum(s.duration_s for s in streams) / SECONDS_PER_HOUR


def evaluate_threshold(streams: Sequence[ScoredStream], labels: Sequence[str], keywords: Sequence[str],
                       threshold: int, suppression_ms: int, tolerance_ms: int) -> Matching:
    """Every stream's detections at ``threshold``, matched against its ground truth."""
    total = Matching()
    for stream in streams:
        found = detections(stream, labels, keywords, threshold, suppression_ms)
        total.extend(match(stream.events, found, keywords, tolerance_ms))
    return total


@dataclasses.dataclass(frozen=True)
class DetPoint:
    threshold: int
    false_accepts: int
    false_accepts_per_hour: float
    misses: int
    false_reject_rate: float


def det_curve(streams: Sequence[ScoredStream], labels: Sequence[str], keywords: Sequence[str],
              suppression_ms: int, tolerance_ms: int) -> List[DetPoint]:
    """FRR and false accepts per hour at every detection threshold, 0 to 255."""
    total_hours = hours(streams)
    occurrences = keyword_count(streams, keywords)
    points = []
    for threshold in recognize.THRESHOLDS:
        m = evaluate_threshold(streams, labels, keywords, threshold, suppression_ms, tolerance_ms)
        points.append(DetPoint(threshold, len(m.false_accepts),
                               len(m.false_accepts) / total_hours if total_hours else 0.0,
                               len(m.missed), len(m.missed) / occurrences if occurrences else float("nan")))
    return points


def false_accept_upper_bound(count: int, total_hours: float, confidence: float = 0.95) -> float:
    """The one-sided Poisson upper confidence bound of the false-accept rate per hour (exact, chi-square)."""
    from scipy.stats import chi2

    return float(chi2.ppf(confidence, 2 * count + 2) / 2 / total_hours) if total_hours else float("inf")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The chosen operating point and whether it meets the requirements."""

    point: DetPoint
    blessed: bool
    refusals: Tuple[str, ...]


def choose_operating_point(curve: Sequence[DetPoint], max_false_accepts_per_hour: float,
                           max_false_reject_rate: float) -> Verdict:
    """The threshold with the lowest FRR within the false-accept budget (highest threshold on a tie),
    blessed when its FRR is within ``max_false_reject_rate``; otherwise the refusal says which
    requirement fails and by how much."""
    within = [p for p in curve if p.false_accepts_per_hour <= max_false_accepts_per_hour]
    if not within:  # cannot happen with threshold 255 in the curve (it never fires), but say so if it does
        lowest = min(curve, key=lambda p: p.false_accepts_per_hour)
        return Verdict(lowest, False, (
            f"no detection threshold keeps false accepts at or below {max_false_accepts_per_hour:g} per hour "
            f"(lowest {lowest.false_accepts_per_hour:.2f} at threshold {lowest.threshold})",))
    best = min(within, key=lambda p: (p.false_reject_rate, -p.threshold))
    if best.false_reject_rate <= max_false_reject_rate:
        return Verdict(best, True, ())
    refusal = (f"no detection threshold meets both requirements: within {max_false_accepts_per_hour:g} false "
               f"accepts per hour the lowest false-reject rate is {best.false_reject_rate:.3f} (threshold "
               f"{best.threshold}), {best.false_reject_rate - max_false_reject_rate:.3f} above "
               f"max_false_reject_rate {max_false_reject_rate:g}")
    meeting_frr = [p for p in curve if p.false_reject_rate <= max_false_reject_rate]
    if meeting_frr:
        cheapest = min(meeting_frr, key=lambda p: (p.false_accepts_per_hour, -p.threshold))
        refusal += (f"; a false-reject rate within {max_false_reject_rate:g} needs threshold {cheapest.threshold} "
                    f"or lower, where false accepts reach {cheapest.false_accepts_per_hour:.2f} per hour, "
                    f"{cheapest.false_accepts_per_hour - max_false_accepts_per_hour:.2f} above "
                    f"max_false_accepts_per_hour {max_false_accepts_per_hour:g}")
    else:
        lowest = min(curve, key=lambda p: p.false_reject_rate)
        refusal += (f"; no threshold reaches a false-reject rate of {max_false_reject_rate:g} at all (lowest "
                    f"{lowest.false_reject_rate:.3f} at threshold {lowest.threshold})")
    return Verdict(best, False, (refusal,))


def _delay_stats(delays: Sequence[int]) -> Dict[str, Optional[float]]:
    if not delays:
        return {"median_ms": None, "p90_ms": None}
    return {"median_ms": float(np.median(delays)), "p90_ms": float(np.percentile(delays, 90))}


def breakdown(matching: Matching, keywords: Sequence[str]) -> Dict[str, object]:
    """Per keyword (occurrences, FRR, delay) and per SNR (occurrences, FRR) at one threshold."""
    per_keyword = {}
    for keyword in keywords:
        found = [(e, d) for e, d in matching.found if e.label == keyword]
        missed = [e for e in matching.missed if e.label == keyword]
        total = len(found) + len(missed)
        per_keyword[keyword] = {
            "occurrences": total, "missed": len(missed),
            "false_reject_rate": len(missed) / total if total else None,
            "false_accepts": sum(1 for d, _ in matching.false_accepts if d.label == keyword),
            **_delay_stats([d.time_ms - e.end_ms for e, d in found])}
    per_snr: Dict[str, Dict[str, object]] = {}
    for event, hit in [(e, True) for e, _ in matching.found] + [(e, False) for e in matching.missed]:
        key = "unknown" if event.snr_db is None else f"{event.snr_db:g}"
        entry = per_snr.setdefault(key, {"occurrences": 0, "missed": 0})
        entry["occurrences"] += 1
        entry["missed"] += 0 if hit else 1
    for entry in per_snr.values():
        entry["false_reject_rate"] = entry["missed"] / entry["occurrences"]
    contexts: Dict[str, int] = {}
    for _, context in matching.false_accepts:
        contexts[context] = contexts.get(context, 0) + 1
    return {"per_keyword": per_keyword, "per_snr_db": dict(sorted(per_snr.items())),
            "false_accepts_by_context": contexts,
            "delay": _delay_stats([d.time_ms - e.end_ms for e, d in matching.found])}
