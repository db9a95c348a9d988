"""The streaming evaluation: streams -> front end -> int8 model on TFLite Micro at the device's
inference stride -> RecognizeCommands -> detections against ground truth, over every threshold.

Plain library (the executor and ``tinyml-tfx stream-eval`` call ``evaluate``). Streams are
loaded and the model invoked in worker processes (one TFLite Micro interpreter each); the
front end runs in this process, where TensorFlow is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

from components.errors import PipelineInputError
from components.streaming_evaluator import metrics, recognize, source as source_lib, tflm

TIMELINE_SECONDS = 20.0
TIMELINE_LEAD_SECONDS = 3.0
ENVELOPE_MS = 10


@dataclasses.dataclass(frozen=True)
class StreamingRequirements:
    max_false_accepts_per_hour: float
    max_false_reject_rate: float


@dataclasses.dataclass(frozen=True)
class StreamingSettings:
    """How the device post-processes and how detections are judged (the threshold is chosen)."""

    average_window_ms: int = 1000
    suppression_ms: int = 1500
    minimum_count: int = 3
    inference_stride_ms: int = 0      # 0: derived from the target's latency (device_stride_ms)
    tolerance_ms: int = 1000

    def recognition(self, threshold: int = 255) -> recognize.RecognitionSettings:
        return recognize.RecognitionSettings(self.average_window_ms, threshold, self.suppression_ms, self.minimum_count)


def device_stride_ms(latency_ms: Optional[float], frame_stride_ms: int) -> int:
    """How often a device that runs inference back to back invokes the model: its time per
    inference rounded up to whole feature slices, at least one slice (micro_speech runs the
    model whenever a new slice is ready and the previous inference is done)."""
    if latency_ms is None or not math.isfinite(latency_ms) or latency_ms <= 0:
        raise PipelineInputError(
            "The inference stride is derived from the target board's estimated time per inference, which the "
            "size gate did not report. Set streaming.inference_stride_ms in the config (a multiple of the "
            f"feature stride, {frame_stride_ms} ms).")
    return max(1, math.ceil(latency_ms / frame_stride_ms)) * frame_stride_ms


def window_ends(frame_count: int, per_window: int, stride_frames: int) -> np.ndarray:
    """Index of the last frame of every window the device classifies: the first full window, then
    every ``stride_frames`` frames."""
    return np.arange(per_window - 1, frame_count, stride_frames, dtype=np.int64)


def end_time_ms(frame_index: np.ndarray, frames: Dict[str, int]) -> np.ndarray:
    """When frame ``k`` is complete, in ms from the start of the stream: the inference's time."""
    return frame_index * frames["stride_ms"] + frames["length_ms"]


@contextlib.contextmanager
def _workers(count: int) -> Iterator[Any]:
    """A spawn pool of ``count`` processes, or None to work in this process."""
    if count <= 1:
        yield None
        return
    with multiprocessing.get_context("spawn").Pool(count) as pool:
        yield pool


def _load(module_path: str, job: Dict[str, Any]) -> source_lib.LoadedStream:
    return source_lib.import_source(module_path).load(job)


def _timeline(stream: source_lib.LoadedStream, times: np.ndarray, scores: np.ndarray, averaged: recognize.Averaged,
              matching: metrics.Matching, labels: Sequence[str]) -> Dict[str, Any]:
    """A stretch of one stream for the report's timeline plot: envelope, scores, detections, truth."""
    keyword_events = [e for e, _ in matching.found] + matching.missed
    first = min((e.start_ms for e in keyword_events), default=0)
    start_ms = int(max(0.0, first / 1000 - TIMELINE_LEAD_SECONDS) * 1000)
    end_ms = int(min(stream.duration_s * 1000, start_ms + TIMELINE_SECONDS * 1000))
    hop = stream.sample_rate * ENVELOPE_MS // 1000
    piece = stream.samples[start_ms * stream.sample_rate // 1000:end_ms * stream.sample_rate // 1000]
    blocks = piece[:len(piece) // hop * hop].reshape(-1, hop).astype(np.float32) / 32768.0
    inside = (times >= start_ms) & (times <= end_ms)
    detections = [(d, True) for _, d in matching.found] + [(d, False) for d, _ in matching.false_accepts]
    return {
        "stream": stream.name, "start_ms": start_ms, "end_ms": end_ms, "envelope_ms": ENVELOPE_MS,
        "envelope_min": np.round(blocks.min(axis=1), 4).tolist() if len(blocks) else [],
        "envelope_max": np.round(blocks.max(axis=1), 4).tolist() if len(blocks) else [],
        "labels": list(labels),
        "inference_ms": times[inside].tolist(),
        "scores": (scores[inside].astype(np.int32) + recognize.SCORE_OFFSET).tolist(),
        "average": [int(s) if v else None for s, v in zip(averaged.score[inside], averaged.valid[inside])],
        "average_top": [labels[int(t)] if v else None for t, v in zip(averaged.top[inside], averaged.valid[inside])],
        "events": [dataclasses.asdict(e) for e in stream.events if e.end_ms >= start_ms and e.start_ms <= end_ms],
        "detections": [{"time_ms": d.time_ms, "label": d.label, "score": d.score, "correct": correct}
                       for d, correct in sorted(detections, key=lambda item: item[0].time_ms)
                       if start_ms <= d.time_ms <= end_ms],
    }


def detections_at(scored: Sequence[metrics.ScoredStream], labels: Sequence[str], keywords: Sequence[str],
                  threshold: int, settings: StreamingSettings) -> Dict[str, Any]:
    """Every detection at ``threshold``, in time order, with what it found or fell on (JSON-able)."""
    rows = []
    for stream in scored:
        found = metrics.detections(stream, labels, keywords, threshold, settings.suppression_ms)
        m = metrics.match(stream.events, found, keywords, settings.tolerance_ms)
        rows += [{"stream": stream.name, "time_ms": d.time_ms, "label": d.label, "score": d.score,
                  "found": {"start_ms": e.start_ms, "end_ms": e.end_ms}} for e, d in m.found]
        rows += [{"stream": stream.name, "time_ms": d.time_ms, "label": d.label, "score": d.score, "false_accept": what}
                 for d, what in m.false_accepts]
    return {"threshold": threshold, "detections": sorted(rows, key=lambda r: (r["stream"], r["time_ms"]))}


def evaluate(model: bytes, labels: Sequence[str], keywords: Sequence[str], source_module: str,
             source_settings: Dict[str, Any], settings: StreamingSettings, requirements: StreamingRequirements,
             workers: int = 1, target_latency_ms: Optional[float] = None, list_threshold: Optional[int] = None,
             log: Callable[[str], None] = lambda message: None) -> Dict[str, Any]:
    """Evaluates ``model`` on the streams of ``source_module`` (see ``source.py``).

    Args:
        model: the int8 TFLite flatbuffer.
        labels: its classes in output order (class 0 is silence, as RecognizeCommands assumes).
        keywords: the classes that are commands; detections of the others are ignored.
        source_module: the stream source's import path.
        source_settings: what the source needs (its ``frames`` give the front end's timing).
        settings: RecognizeCommands' settings and the inference stride (0: from ``target_latency_ms``).
        requirements: the false-accept budget and the false-reject limit.
        workers: processes that load streams and run TFLite Micro.
        target_latency_ms: the target board's estimated time per inference.
        list_threshold: list every detection at this threshold in ``detections`` (default: the chosen one).
        log: progress messages.

    Returns:
        The report (JSON-able): settings, composition, DET curve, operating point, verdict,
        per-keyword and per-SNR figures, the detections at ``list_threshold``, the timeline stretch,
        timings; plus ``_scores`` (per stream times and int8 scores) and ``_events`` (per stream
        ground truth), which are not JSON.
    """
    started = time.time()
    source = source_lib.import_source(source_module)
    frames_info = source_settings["frames"]
    frame_stride = int(frames_info["stride_ms"])
    io = tflm.model_io(model)
    if io.output_classes != len(labels):
        raise PipelineInputError(f"The model has {io.output_classes} outputs but {len(labels)} labels were given "
                                 f"({', '.join(labels)}); they must match, in output order.")
    per_window = int(frames_info["per_window"])
    stride_ms, stride_source = settings.inference_stride_ms, "configured"
    if not stride_ms:
        stride_ms, stride_source = device_stride_ms(target_latency_ms, frame_stride), "target board's estimated latency"
    if stride_ms % frame_stride:
        raise PipelineInputError(f"The inference stride {stride_ms} ms is not a multiple of the front end's "
                                 f"{frame_stride} ms feature stride. Set streaming.inference_stride_ms to one.")
    settings = dataclasses.replace(settings, inference_stride_ms=stride_ms)
    jobs = source.plan(source_settings)
    log(f"{len(jobs)} stream(s); inference every {stride_ms} ms ({stride_source}) on TFLite Micro, "
        f"{max(1, workers)} worker(s)")
    loaded, outputs, timings = _run_streams(source, source_module, source_settings, jobs, model, io, per_window,
                                            stride_ms // frame_stride, workers, log)
    scored, raw = [], {}
    for stream, (ends, scores) in zip(loaded, outputs):
        times = end_time_ms(ends, frames_info)
        averaged = recognize.average_stream(scores.reshape(len(ends), -1), times, len(labels), settings.recognition())
        scored.append(metrics.ScoredStream(stream.name, stream.duration_s, stream.events, averaged))
        raw[stream.name] = (times, scores)

    mark = time.time()
    curve = metrics.det_curve(scored, labels, keywords, settings.suppression_ms, settings.tolerance_ms)
    verdict = metrics.choose_operating_point(curve, requirements.max_false_accepts_per_hour,
                                             requirements.max_false_reject_rate)
    refusals = list(verdict.refusals)
    if not recognize.minimum_count_reachable(settings.recognition(), stride_ms):
        refusals.insert(0, f"at an inference every {stride_ms} ms ({stride_source}) at most "
                           f"{settings.average_window_ms // stride_ms + 1} results fall in the "
                           f"{settings.average_window_ms} ms averaging window, fewer than minimum_count "
                           f"{settings.minimum_count}: RecognizeCommands never recognises a command")
    point = verdict.point
    matching = metrics.evaluate_threshold(scored, labels, keywords, point.threshold, settings.suppression_ms,
                                          settings.tolerance_ms)
    timings["postprocessing"] = time.time() - mark
    audio_seconds = sum(s.duration_s for s in scored)
    total_hours = metrics.hours(scored)
    shown = max(range(len(loaded)), key=lambda i: sum(e.label in keywords for e in loaded[i].events))
    shown_matching = metrics.match(loaded[shown].events, metrics.detections(
        scored[shown], labels, keywords, point.threshold, settings.suppression_ms), keywords, settings.tolerance_ms)
    wall = time.time() - started
    report = {
        "settings": {**dataclasses.asdict(settings), "detection_threshold": point.threshold,
                     "inference_stride_source": stride_source, "target_latency_ms": target_latency_ms,
                     "frame_stride_ms": frame_stride, "window_frames": per_window},
        "requirements": dataclasses.asdict(requirements),
        "labels": list(labels), "keywords": list(keywords),
        "source": {"module": source_module, "settings": source_settings},
        "composition": {**source.composition(source_settings), "streams": len(scored),
                        "audio_seconds": round(audio_seconds, 3),
                        "keyword_occurrences": metrics.keyword_count(scored, keywords),
                        "other_speech": sum(1 for s in scored for e in s.events if e.label not in keywords),
                        "backgrounds": sorted({s.background for s in loaded})},
        "operating_point": {**dataclasses.asdict(point),
                            "false_accepts_per_hour_upper_95": metrics.false_accept_upper_bound(
                                point.false_accepts, total_hours),
                            "keyword_occurrences": metrics.keyword_count(scored, keywords),
                            "found": len(matching.found)},
        "blessed": not refusals, "refusals": refusals,
        "breakdown": metrics.breakdown(matching, keywords),
        "det_curve": [dataclasses.asdict(p) for p in curve],
        "detections": detections_at(scored, labels, keywords,
                                    point.threshold if list_threshold is None else list_threshold, settings),
        "streams": [{"name": s.name, "seconds": round(s.duration_s, 3), "background": s.background,
                     "keyword_occurrences": sum(e.label in keywords for e in s.events),
                     "inferences": int(len(sc.averaged.times_ms)), "dropped_results": sc.averaged.dropped_results}
                    for s, sc in zip(loaded, scored)],
        "timeline": _timeline(loaded[shown], *raw[loaded[shown].name], scored[shown].averaged, shown_matching, labels),
        "timing": {**{k: round(v, 2) for k, v in timings.items()}, "wall_seconds": round(wall, 2),
                   "audio_seconds": round(audio_seconds, 1), "workers": max(1, workers),
                   "inferences": int(sum(len(s.averaged.times_ms) for s in scored)),
                   "realtime_factor": round(audio_seconds / wall, 1) if wall else None},
        "_scores": raw,
        "_events": {s.name: s.events for s in loaded},
    }
    return report


def _load_job(args):
    return _load(*args)


def _run_streams(source, source_module: str, source_settings: Dict[str, Any], jobs: Sequence[Dict[str, Any]],
                 model: bytes, io: tflm.ModelIO, per_window: int, stride_frames: int, workers: int,
                 log: Callable[[str], None]):
    """Loads every stream (in the workers), runs the front end (here) and the model on TFLite Micro (in the
    workers) as each stream comes in. Returns the streams, their (window ends, int8 scores), and the
    seconds spent waiting for streams, in the front end, and waiting for (or, alone, running) TFLite Micro."""
    timings = {"load": 0.0, "front_end": 0.0, "tflm": 0.0}
    loaded: List[source_lib.LoadedStream] = []
    pending = []
    with _workers(min(max(1, workers), len(jobs))) as pool:
        loads = (pool.imap(_load_job, [(source_module, job) for job in jobs]) if pool
                 else (_load(source_module, job) for job in jobs))
        mark = time.time()
        for stream in loads:
            timings["load"] += time.time() - mark
            mark = time.time()
            frames = source.features(stream.samples, source_settings)
            timings["front_end"] += time.time() - mark
            ends = window_ends(len(frames), per_window, stride_frames)
            args = (model, tflm.quantize_frames(frames, io), ends, per_window, io.input_shape)
            mark = time.time()
            pending.append((ends, pool.apply_async(tflm.run_windows, args) if pool else tflm.run_windows(*args)))
            timings["tflm"] += time.time() - mark
            loaded.append(stream)
            log(f"  {stream.name}: {stream.duration_s:.0f} s, {len(stream.events)} labelled, {len(ends)} inferences")
            mark = time.time()
        mark = time.time()
        outputs = [(ends, result.get() if pool else result) for ends, result in pending]
        timings["tflm"] += time.time() - mark
    return loaded, outputs, timings
