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
            f"for the workers {f['phases_seconds']['tflm']} s, post-processing {f['phases_seconds']['postprocessing']} "
            f"s) = "
            f"{f['audio_seconds_per_wall_second']}x real time, {f['seconds_per_30_minutes']} s per 30 min (target "
            f"< {TARGET_SECONDS_PER_30_MINUTES:.0f} s: {'met' if f['target_met'] else 'NOT met'}); at threshold "
            f"{f['threshold']}: {f['false_accepts_per_hour']:.2f} false accepts/hour ({f['false_accepts']}; 95% "
            f"upper bound {f['false_accepts_per_hour_upper_95']}), false-reject rate {f['false_reject_rate']:.3f} "
            f"({'blessed' if f['blessed'] else 'not blessed'})")


def state_skew(config, summary, minutes: float = 5.0, high_score: int = 200) -> Dict[str, Any]:
    """How much the front end's carried-over state changes what the model sees, on the first benchmark stream.

    The device runs the front end continuously (noise estimate and gain carried from frame to
    frame); Transform computes every training clip with the front end warmed up on the clip's own
    background (``features.warm_clip_features``; before, from a reset state). On ``minutes`` of the
    benchmark's first stream, at the run's inference stride, each window is classified three times
    on TFLite Micro: with the streaming features (the device's), with the features of the same
    second of audio computed warm (training's) and afresh from a reset state. Reported: the share
    of keyword occurrences whose class scores above ``high_score`` (0..255) in some window between
    the word's start and its end plus the tolerance, each way.
    """
    import dataclasses

    import numpy as np
    import tensorflow as tf

    from components.streaming_evaluator import evaluate, tflm
    from pipeline.tasks.kws import features, streams

    if not summary.streaming:
        return {}
    family = config.family
    report = figures(summary)
    with open(os.path.join(summary.quantization["uri"], "model.tflite"), "rb") as f:
        model = f.read()
    io = tflm.model_io(model)
    recipe = dataclasses.replace(family.stream_recipe(config), minutes=minutes)
    stream = streams.render_stream(recipe, 0)
    params = family.frontend_params(config)
    window, step = features.frame_timing(params)
    per_window = family.model_input_shape(config)[0]
    frames = features.stream_features(stream.samples, params)
    ends = evaluate.window_ends(len(frames), per_window, report["inference_stride_ms"] * params["sample_rate"]
                                // 1000 // step)
    times = evaluate.end_time_ms(ends, {"stride_ms": step * 1000 // params["sample_rate"],
                                        "length_ms": window * 1000 // params["sample_rate"]})
    continuous = tflm.run_windows(model, tflm.quantize_frames(frames, io), ends, per_window, io.input_shape)
    clip = config.data.clip_samples
    def per_second(compute):
        return np.stack([tflm.run_windows(model, tflm.quantize_frames(compute(tf.constant(
            stream.samples[(end - per_window + 1) * step:(end - per_window + 1) * step + clip])).numpy(), io),
            np.array([per_window - 1]), per_window, io.input_shape)[0] for end in ends])

    fresh = per_second(lambda samples: features.clip_features(samples, params))
    warm = per_second(lambda samples: features.warm_clip_features(samples, params))
    labels = list(config.data.labels)
    best = {"continuous": [], "warm": [], "fresh": []}
    for event in stream.events:
        if event.label not in config.data.words:
            continue
        near = (times >= event.start_ms) & (times <= event.end_ms + config.streaming.tolerance_ms)
        for name, scores in (("continuous", continuous), ("warm", warm), ("fresh", fresh)):
            best[name].append(int(scores[near, labels.index(event.label)].max(initial=-128)) + 128)
    return {"minutes": minutes, "keyword_occurrences": len(best["fresh"]), "high_score": high_score,
            **{f"share_above_{name}": round(float(np.mean(np.array(v) > high_score)), 3) for name, v in best.items()},
            **{f"median_best_score_{name}": float(np.median(v)) for name, v in best.items()}}


def describe_skew(s: Dict[str, Any]) -> str:
    if not s:
        return ""
    return (f"Front-end state (first {s['minutes']:g} min of stream, {s['keyword_occurrences']} keywords): the "
            f"keyword's class scores above {s['high_score']} near it for {100 * s['share_above_continuous']:.0f}% of "
            f"them with the device's continuous front end, "
            + (f"{100 * s['share_above_warm']:.0f}% with each second's features computed warm as in training, "
               if "share_above_warm" in s else "")
            + f"{100 * s['share_above_fresh']:.0f}% with them computed afresh from a reset state (median best score "
            f"{s['median_best_score_continuous']:.0f} vs {s['median_best_score_fresh']:.0f})")
