"""`make bench`'s streaming figures: the StreamingEvaluator of the cold run, on the default benchmark streams.

Reads what the component measured (its ``streaming_report.json``): the wall time of the whole
evaluation (streams generated, front end, the int8 model on TFLite Micro at the inference
stride, RecognizeCommands over every threshold), the throughput in audio seconds per wall
second, and the default model's false accepts per hour and false-reject rate at the chosen
operating point. The target: 30 minutes of audio evaluated in under 2 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

TARGET_SECONDS_PER_30_MINUTES = 120.0


def figures(summary) -> Dict[str, Any]:
    """The streaming figures of a run summary (empty when the run has no StreamingEvaluator)."""
    from components.streaming_evaluator import postprocessing

    if not summary.streaming:
        return {}
    with open(os.path.join(summary.streaming["uri"], postprocessing.REPORT_FILE)) as f:
        report = json.load(f)
    timing, point, settings = report["timing"], report["operating_point"], report["settings"]
    component = next((c.seconds for c in summary.components if c.node_id == "StreamingEvaluator"), None)
    per_30_minutes = timing["wall_seconds"] * 1800.0 / timing["audio_seconds"]
    return {
        "audio_minutes": round(timing["audio_seconds"] / 60, 2), "streams": report["composition"]["streams"],
        "keyword_occurrences": point["keyword_occurrences"], "inferences": timing["inferences"],
        "inference_stride_ms": settings["inference_stride_ms"], "stride_source": settings["inference_stride_source"],
        "workers": timing["workers"], "evaluation_seconds": timing["wall_seconds"],
        "component_seconds": None if component is None else round(component, 1),
        "phases_seconds": {k: timing[k] for k in ("load", "front_end", "tflm", "postprocessing")},
        "audio_seconds_per_wall_second": timing["realtime_factor"],
        "seconds_per_30_minutes": round(per_30_minutes, 1),
        "target_met": per_30_minutes < TARGET_SECONDS_PER_30_MINUTES,
        "threshold": point["threshold"], "false_accepts": point["false_accepts"],
        "false_accepts_per_hour": point["false_accepts_per_hour"],
        "false_accepts_per_hour_upper_95": round(point["false_accepts_per_hour_upper_95"], 2),
        "false_reject_rate": round(point["false_reject_rate"], 4), "blessed": report["blessed"],
        "refusals": report["refusals"],
    }


def describe(f: Dict[str, Any]) -> str:
    """The figures as the bench prints them."""
    if not f:
        return "Streaming: no StreamingEvaluator in this pipeline."
    return (f"Streaming ({f['audio_minutes']} min in {f['streams']} streams, {f['keyword_occurrences']} keywords; "
            f"{f['inferences']} inferences on TFLite Micro every {f['inference_stride_ms']} ms, {f['workers']} "
            f"processes): {f['evaluation_seconds']:.1f} s (component {f['component_seconds']} s; streams "
            f"{f['phases_seconds']['load']} s, front end {f['phases_seconds']['front_end']} s, TFLM waiting "
            X {f['phases_seconds']['postprocessing']} s) = "
            f"{f['audio_seconds_per_wall_second']}x real time, {f['seconds_per_30_minutes']} s per 30 min (target "
            f"< {TARGET_SECONDS_PER_30_MINUTES:.0f} s: {'met' if f['target_met'] else 'NOT met'}); at threshold "
            f"{f['threshold']}: {f['false_accepts_per_hour']:.2f} false accepts/hour ({f['false_accepts']}; 95% "
            f"upper bound {f['false_accepts_per_hour_upper_95']}), false-reject rate {f['false_reject_rate']:.3f} "
            f"({'blessed' if f['blessed'] else 'not blessed'})")
