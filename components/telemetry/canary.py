"""The canary gate: is the canary's field telemetry not worse than stable's?

``tinyml-tfx promote`` (canary to stable) asks ``judge`` with the summary records of the last
``window_periods`` periods of the field dataset. The figures, each canary vs stable:

- **command rate**: commands recognised per device-hour. A canary that hears the same fleet
  but recognises markedly fewer commands is missing them (false rejects); the gate refuses a
  relative drop above ``max_detection_rate_drop``. When the summaries of at least
  ``MIN_CONFIRMED_COVERAGE`` of each version's device-hours report ``confirmed`` (the
  application's confirmation of a detected command), the rate counts confirmed commands over
  those device-hours: raw detections count false accepts as commands, so a stable model that
  fires on a new noise would look better than a canary that does not (measured in the README's
  continuous-training demo). Otherwise it counts detections, and the verdict's notes say so.
- **confirmed share**: with confirmations, the share of detections confirmed (a precision proxy:
  false accepts are rarely confirmed). The gate refuses a canary whose share is lower than
  stable's by more than ``max_confirmed_share_drop`` (more false accepts per command); with
  fewer than ``MIN_SHARE_DETECTIONS`` detections on either side (a stable model that went silent
  under a new noise, say) it cannot compare, and a note says so.
- **top-score histogram**: the share of inferences per bin of the top int8 score. The gate
  refuses when the L-infinity distance exceeds ``max_score_distance`` *and* the canary's mean
  top score is lower (a less confident model); a more confident canary passes.

Both versions must have telemetry in the window; without it there is nothing to judge and the
gate refuses (``--force`` overrides, and the override is recorded in the signed history). A fleet
that reports no telemetry at all for the device class (monitoring not set up) is not gated:
promote proceeds and its recorded action says the gate was not applied.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from components.telemetry.summary import SCORE_BINS

BIN_CENTRES = np.arange(SCORE_BINS) * 16 - 128 + 7.5   # the int8 score at each bin's centre


# The confirmed figures are used when at least this share of each version's device-hours reports
# confirmations: a stray old-firmware device (or one forged record) must not switch the gate back to
# detections, and a handful of reporting devices must not stand for a version.
MIN_CONFIRMED_COVERAGE = 0.5
# The confirmed shares are compared only with at least this many detections on each side: 1 of 2
# against 9 of 10 is noise, not a regression.
MIN_SHARE_DETECTIONS = 20


@dataclasses.dataclass(frozen=True)
class VersionFigures:
    version: str
    devices: int
    summaries: int
    hours: float
    detections_per_hour: float
    score_shares: List[float]
    confirmed_coverage: float = 0.0              # share of the device-hours whose summaries report confirmations
    confirmed_per_hour: Optional[float] = None   # over those device-hours; None when none report them
    confirmed_share: Optional[float] = None      # confirmed / detected over those; None also without detections
    reported_detections: int = 0                 # the detections of the summaries that report confirmations

    @property
    def mean_top_score(self) -> float:
        return float(np.dot(self.score_shares, BIN_CENTRES))


@dataclasses.dataclass(frozen=True)
class CanaryVerdict:
    allowed: bool
    reasons: List[str]
    periods: List[int]
    canary: Optional[VersionFigures]
    stable: Optional[VersionFigures]
    detection_rate_drop: Optional[float] = None
    score_distance: Optional[float] = None
    basis: str = ""   # "confirmed" commands or all "detections": what the rate counted
    notes: List[str] = dataclasses.field(default_factory=list)   # what the gate could not judge, and why

    def rates(self) -> str:
        """The compared rates in words (empty without both versions' figures)."""
        if not (self.canary and self.stable):
            return ""
        if self.basis == "confirmed":
            return (f"{self.canary.confirmed_per_hour:.1f} vs {self.stable.confirmed_per_hour:.1f} confirmed commands "
                    f"per device-hour ({self.canary.detections_per_hour:.1f} vs {self.stable.detections_per_hour:.1f} "
                    "detections)")
        return (f"{self.canary.detections_per_hour:.1f} vs {self.stable.detections_per_hour:.1f} detections per "
                "device-hour (false accepts count as commands)")

    def to_json(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def figures(summaries: Sequence[Dict[str, Any]], version: str) -> Optional[VersionFigures]:
    """The version's detection rate and top-score shares over ``summaries`` (None without any), and its
    confirmed figures over the summaries that report confirmations."""
    mine = [s for s in summaries if s["model_version"] == version]
    if not mine:
        return None
    hours = sum(s["period_seconds"] for s in mine) / 3600.0
    histogram = np.sum([s["score_histogram"] for s in mine], axis=0).astype(float)
    shares = (histogram / histogram.sum()).tolist() if histogram.sum() else [0.0] * SCORE_BINS
    detections = sum(sum(s.get("detections", {}).values()) for s in mine)
    reporting = [s for s in mine if "confirmed" in s]
    reporting_hours = sum(s["period_seconds"] for s in reporting) / 3600.0
    reported = sum(sum(s.get("detections", {}).values()) for s in reporting)
    confirmed = sum(sum(s["confirmed"].values()) for s in reporting)
    return VersionFigures(version, len({s["device_id"] for s in mine}), len(mine), hours, detections / hours, shares,
                          reporting_hours / hours, confirmed / reporting_hours if reporting else None,
                          confirmed / reported if reported else None, reported)


def judge(summaries: Sequence[Dict[str, Any]], canary: str, stable: Optional[str], window_periods: int,
          max_detection_rate_drop: float, max_score_distance: float,
          max_confirmed_share_drop: float = 0.1) -> CanaryVerdict:
    """Whether ``canary`` may replace ``stable``, from the field's summary records of the last ``window_periods``."""
    periods = sorted({s["period"] for s in summaries if s["model_version"] in (canary, stable)})[-window_periods:]
    window = [s for s in summaries if s["period"] in periods]
    c = figures(window, canary)
    s = figures(window, stable) if stable else None
    if stable is None:
        return CanaryVerdict(True, ["stable points at no release yet: nothing to compare with"], periods, c, None)
    reasons = []
    if c is None:
        reasons.append(f"no field telemetry from devices running the canary {canary} in the last {window_periods} "
                       "period(s): nothing shows it is not worse")
    if s is None:
        reasons.append(f"no field telemetry from devices running stable {stable} in the same period(s) to compare with")
    if reasons:
        return CanaryVerdict(False, reasons, periods, c, s)
    notes = []
    confirmed = min(c.confirmed_coverage, s.confirmed_coverage) >= MIN_CONFIRMED_COVERAGE
    if confirmed:
        canary_rate, stable_rate, what, note = c.confirmed_per_hour, s.confirmed_per_hour, "confirmed commands", ""
    else:
        canary_rate, stable_rate, what = c.detections_per_hour, s.detections_per_hour, "commands"
        note = " (all detections, false accepts included)"
        notes.append(f"confirmations reported for {100 * c.confirmed_coverage:.0f}% of the canary's and "
                     f"{100 * s.confirmed_coverage:.0f}% of stable's device-hours (the gate needs "
                     f"{100 * MIN_CONFIRMED_COVERAGE:.0f}% on both sides): the rate counts all detections, "
                     "false accepts included")
    drop = (stable_rate - canary_rate) / stable_rate if stable_rate else 0.0
    distance = float(np.max(np.abs(np.subtract(c.score_shares, s.score_shares))))
    if drop > max_detection_rate_drop:
        reasons.append(f"the canary recognises {canary_rate:.1f} {what} per device-hour against stable's "
                       f"{stable_rate:.1f}{note}: {100 * drop:.0f}% fewer, more than the "
                       f"{100 * max_detection_rate_drop:.0f}% monitoring.canary_max_detection_rate_drop allows")
    if confirmed:
        few = min(c.reported_detections, s.reported_detections) < MIN_SHARE_DETECTIONS
        if few:
            notes.append(f"the share of detections confirmed is not compared: {c.reported_detections} detection(s) "
                         f"on the canary and {s.reported_detections} on stable, fewer than {MIN_SHARE_DETECTIONS} "
                         "on one side")
        elif s.confirmed_share - c.confirmed_share > max_confirmed_share_drop:
            reasons.append(f"the canary's users confirm {100 * c.confirmed_share:.0f}% of its detections against "
                           f"{100 * s.confirmed_share:.0f}% of stable's: more false accepts per command, a drop above "
                           f"monitoring.canary_max_confirmed_share_drop {max_confirmed_share_drop:g}")
    if distance > max_score_distance and c.mean_top_score < s.mean_top_score:
        reasons.append(f"the canary's top-score histogram is {distance:.3f} away from stable's (L-infinity, more than "
                       f"monitoring.canary_max_score_distance {max_score_distance:g}) and lower: mean top score "
                       f"{c.mean_top_score:.1f} against {s.mean_top_score:.1f}")
    return CanaryVerdict(not reasons, reasons, periods, c, s, drop, distance,
                         "confirmed" if confirmed else "detections", notes)
