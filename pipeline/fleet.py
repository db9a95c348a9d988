"""The fleet simulator: devices running the released int8 model on TFLite Micro over synthetic audio,
reporting telemetry per period (a "day"), with a distribution shift from a chosen day.

How a device-day is made (deterministic from the seed):

1. **Pools of audio, run once.** The task family's field streams (``TaskFamily.field_streams``):
   for keyword spotting, the StreamingEvaluator's synthetic streams (unseen voices of the dataset,
   its noise kinds) and, for the shift, the same speech over a background the dataset lacks at low
   SNR. Each pool stream goes through the device's path exactly as the StreamingEvaluator runs it:
   the front end over the whole stream, int8 quantization, the model on TFLite Micro at the
   device's inference stride, micro_speech's RecognizeCommands (``components/streaming_evaluator``).
2. **Devices draw from the pools.** A device-day is a stretch of ``seconds_per_day`` from a pool
   stream, at a random place; its frames, inferences and detections go through the device's
   summary code (``components/telemetry/summary.py``, the C header's mirror) into one summary
   record, plus detection events and ``samples_per_device_day`` sampled one-second windows
   labelled by the simulator's ground truth (``label_source`` says so).
3. From ``shift_day`` on, ``shifted_fraction`` of the devices draw from the shifted pool.
4. **Users confirm commands.** Each detection is matched against the pool's ground truth as the
   StreamingEvaluator matches (``metrics.match``); the device's application confirms a correct one
   with probability ``confirm_rate`` and a false accept with ``false_confirm_rate`` (users acting
   on a command they did not give). These rates are the simulation's assumptions about users,
   not measurements; each device-day draws its own confirmations.

Devices share the pools (rendering and inference per device would cost minutes per device-day
on this machine): device-days differ by where they listen, not by unique audio. That is the
simulation's main limit; the pool's length sets how much audio the fleet really hears.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from components.errors import PipelineInputError
from components.streaming_evaluator import evaluate, metrics, recognize, source as source_lib, tflm
from components.telemetry.summary import SummaryAccumulator

GROUND_TRUTH = "fleet simulator ground truth (synthetic streams' labels)"
DAY_SECONDS = 86400
EPOCH = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
SILENCE, UNKNOWN = "_silence_", "_unknown_"
REFERENCE_SEED_TAG = 99     # the reference's devices draw other stretches than the field's


@dataclasses.dataclass(frozen=True)
class DeviceSettings:
    """How the released model runs on the device: its inference stride and post-processing (the
    release's streaming settings: micro_speech's RecognizeCommands with the chosen threshold)."""

    inference_stride_ms: int = 100
    recognition: recognize.RecognitionSettings = recognize.RecognitionSettings()
    # how late a detection may be and still be its utterance's: the release's StreamingEvaluator tolerance,
    # used by the simulator to tell a correct detection from a false accept (the device does not know)
    match_tolerance_ms: int = 1000

    @property
    def threshold(self) -> int:
        return self.recognition.detection_threshold

    @property
    def suppression_ms(self) -> int:
        return self.recognition.suppression_ms


@dataclasses.dataclass(frozen=True)
class FleetSpec:
    devices: int = 20
    days: int = 10
    shift: str = ""                  # one of the family's field_shifts; "" no shift
    shift_day: Optional[int] = None  # the first shifted day
    shifted_fraction: float = 1.0
    seed: int = 1
    seconds_per_day: float = 60.0    # audio each device-day summarises
    pool_minutes: float = 2.0        # audio rendered and run per distribution
    samples_per_device_day: int = 1
    model_version: str = "0.1.0"
    device_class: str = ""           # "": the config's target device
    confirm_rate: float = 0.9        # a correct detection is confirmed by its user with this probability
    false_confirm_rate: float = 0.05   # a false accept is (the user acted on a command they did not give)

    def check(self, shifts: Sequence[str]) -> None:
        if self.devices < 1 or self.days < 1:
            raise PipelineInputError(f"A fleet needs at least one device and one day, not {self.devices} and "
                                     f"{self.days}.")
        if self.shift and self.shift not in shifts:
            raise PipelineInputError(f"Unknown shift '{self.shift}'; this task family offers "
                                     f"{', '.join(shifts) or 'none'}.")
        if self.shift and (self.shift_day is None or not 0 <= self.shift_day < self.days):
            raise PipelineInputError(f"A shift needs --shift-day between 0 and {self.days - 1}.")
        for name in ("confirm_rate", "false_confirm_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise PipelineInputError(f"{name} is a probability between 0 and 1, not {getattr(self, name):g}.")
        if self.seconds_per_day <= 0 or self.seconds_per_day > self.pool_minutes * 60:
            raise PipelineInputError(f"seconds_per_day ({self.seconds_per_day:g}) must be positive and at most the "
                                     f"pool's length ({self.pool_minutes * 60:g} s).")


@dataclasses.dataclass
class PoolStream:
    """One pool stream after the device's path: int8 frames, inferences and detections, with times."""

    name: str
    samples: np.ndarray
    sample_rate: int
    frames: np.ndarray          # int8 [n, channels], the model's input
    frame_end_ms: np.ndarray    # when each frame is complete
    window_ms: np.ndarray       # each inference's time
    scores: np.ndarray          # int8 [windows, classes]
    detections: List[Tuple[int, int, int, bool]]   # (time_ms, class index, score, correct)
    events: Tuple[metrics.Event, ...]

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.samples) / self.sample_rate


def build_pool(model: bytes, labels: Sequence[str], keywords: Sequence[str], source_module: str,
               source_settings: Dict[str, Any], device: DeviceSettings,
               log: Callable[[str], None] = lambda m: None) -> List[PoolStream]:
    """Every stream of the source through the device's path (front end, int8, TFLite Micro, RecognizeCommands),
    each detection marked correct or not against the stream's ground truth (``metrics.match``)."""
    source = source_lib.import_source(source_module)
    io = tflm.model_io(model)
    frames_info = source_settings["frames"]
    stride = int(frames_info["stride_ms"])
    if device.inference_stride_ms % stride:
        raise PipelineInputError(f"The inference stride {device.inference_stride_ms} ms is not a multiple of the "
                                 f"front end's {stride} ms feature stride.")
    per_window = int(frames_info["per_window"])
    pool = []
    for job in source.plan(source_settings):
        stream = source.load(job)
        frames = tflm.quantize_frames(source.features(stream.samples, source_settings), io)
        ends = evaluate.window_ends(len(frames), per_window, device.inference_stride_ms // stride)
        scores = tflm.run_windows(model, frames, ends, per_window, io.input_shape).reshape(len(ends), -1)
        times = evaluate.end_time_ms(ends, frames_info)
        averaged = recognize.average_stream(scores, times, len(labels), device.recognition)
        scored = metrics.ScoredStream(stream.name, stream.duration_s, stream.events, averaged)
        found = metrics.detections(scored, labels, keywords, device.threshold, device.suppression_ms)
        correct = {id(d) for _, d in metrics.match(stream.events, found, keywords, device.match_tolerance_ms).found}
        pool.append(PoolStream(
            name=stream.name, samples=stream.samples, sample_rate=stream.sample_rate,
            frames=np.asarray(frames, np.int8).reshape(len(frames), -1),
            frame_end_ms=evaluate.end_time_ms(np.arange(len(frames)), frames_info), window_ms=np.asarray(times),
            scores=np.asarray(scores, np.int8),
            detections=[(d.time_ms, list(labels).index(d.label), d.score, id(d) in correct) for d in found],
            events=stream.events))
        log(f"  {stream.name} ({stream.background}): {stream.duration_s:.0f} s, {len(ends)} inferences, "
            f"{len(found)} detections, {len(correct)} of them correct")
    return pool


def true_label(events: Sequence[metrics.Event], start_ms: float, end_ms: float, labels: Sequence[str]) -> str:
    """The simulator's ground truth for a window: the labelled utterance covering most of it if at least half
    of that utterance is inside (a class of the model, or _unknown_ for other speech), else _silence_."""
    best, best_overlap = SILENCE, 0.0
    for e in events:
        overlap = min(end_ms, e.end_ms) - max(start_ms, e.start_ms)
        if overlap > best_overlap and overlap >= 0.5 * (e.end_ms - e.start_ms):
            best, best_overlap = (e.label if e.label in labels else UNKNOWN), overlap
    return best


def device_day(pool: Sequence[PoolStream], rng: np.random.Generator, spec: FleetSpec, labels: Sequence[str],
               channels: Sequence[str], device_id: str, device_class: str, day: int
               ) -> Tuple[Dict[str, Any], List[Dict[str, Any]], List[Tuple[str, bytes]]]:
    """One device's day: its summary record, its events (detections, samples) and the sample files."""
    from components.audio_example_gen import wav

    stream = pool[int(rng.integers(len(pool)))]
    length = spec.seconds_per_day * 1000.0
    start = float(rng.uniform(0.0, max(0.0, stream.duration_ms - length)))
    end = start + length
    acc = SummaryAccumulator(len(channels), len(labels))
    acc.add_frames(stream.frames[(stream.frame_end_ms >= start) & (stream.frame_end_ms < end)])
    inside = np.flatnonzero((stream.window_ms >= start) & (stream.window_ms < end))
    acc.add_windows(stream.scores[inside])
    period_start = EPOCH + datetime.timedelta(days=day)
    identity = {"device_id": device_id, "device_class": device_class, "model_version": spec.model_version}

    def at(ms: float) -> str:
        # a device-day's audio stands for its whole day: its times are spread over the day
        offset = (ms - start) / length * DAY_SECONDS
        return (period_start + datetime.timedelta(seconds=offset)).isoformat().replace("+00:00", "Z")

    events = []
    users = rng.spawn(1)[0]    # its own stream: the draws below stay those of a fleet without confirmations
    for time_ms, index, score, correct in stream.detections:
        if start <= time_ms < end:
            acc.add_detection(index)
            if users.random() < (spec.confirm_rate if correct else spec.false_confirm_rate):
                acc.add_confirmation(index)
            events.append({"type": "detection", **identity, "time": at(time_ms), "period": day,
                           "label": labels[index], "score": int(score)})
    files = []
    window = 1000.0
    for i in rng.choice(inside, size=min(spec.samples_per_device_day, len(inside)), replace=False) if len(inside) else []:
        t = float(stream.window_ms[i])
        first = int(max(0.0, t - window) * stream.sample_rate / 1000)
        clip = stream.samples[first:first + stream.sample_rate]
        if len(clip) < stream.sample_rate:
            continue
        name = f"{device_id}_d{day:03d}_{len(files):02d}.wav"
        files.append((name, wav.write_wav(clip, stream.sample_rate)))
        events.append({"type": "sample", **identity, "time": at(t), "period": day, "file": name,
                       "predicted": labels[int(np.argmax(stream.scores[i]))],
                       "label": true_label(stream.events, t - window, t, labels), "label_source": GROUND_TRUTH})
    record = acc.record(labels, channels, **identity, period=day,
                        period_start=period_start.isoformat().replace("+00:00", "Z"), period_seconds=DAY_SECONDS)
    return record, events, files


def write_batch(folder: str, summaries: Sequence[Dict[str, Any]], events: Sequence[Dict[str, Any]],
                files: Sequence[Tuple[str, bytes]]) -> str:
    """A batch folder as a gateway uploads it: telemetry.jsonl and samples/."""
    os.makedirs(os.path.join(folder, "samples"), exist_ok=True)
    with open(os.path.join(folder, "telemetry.jsonl"), "w", encoding="utf-8") as f:
        for row in [*summaries, *events]:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    for name, data in files:
        with open(os.path.join(folder, "samples", name), "wb") as f:
            f.write(data)
    return folder


def build_pools(config, model: bytes, spec: FleetSpec, device: DeviceSettings,
                log: Callable[[str], None] = lambda m: None) -> Dict[str, List[PoolStream]]:
    """The fleet's audio pools, run through the device's path: ``base`` and, with a shift, ``shifted``."""
    family = config.family
    labels = tuple(config.data.labels)
    keywords = tuple(config.data.words) or labels
    pools = {}
    for name, shift in (("base", ""), *((("shifted", spec.shift),) if spec.shift else ())):
        log(f"Pool '{name}'{' (' + shift + ')' if shift else ''}: {spec.pool_minutes:g} min of audio")
        module, settings = family.field_streams(config, shift, spec.seed, spec.pool_minutes)
        pools[name] = build_pool(model, labels, keywords, module, settings, device, log)
    return pools


def shifted_devices(spec: FleetSpec, devices: int) -> set:
    """The devices the shift reaches: ``shifted_fraction`` of them, drawn once from the seed."""
    return set(np.random.default_rng([spec.seed, 7]).permutation(devices)[
        :int(round(spec.shifted_fraction * devices))].tolist())


def day_batch(config, pools: Dict[str, Sequence[PoolStream]], spec: FleetSpec, day: int, devices: int,
              out_dir: str, seed_tag: int = 0) -> str:
    """A batch of ``devices`` devices' summaries for ``day`` (no events or samples): from the shift day on,
    the shifted devices draw from the shifted pool."""
    labels, channels = tuple(config.data.labels), tuple(config.family.telemetry_channels(config))
    reached = shifted_devices(spec, devices) if spec.shift and day >= spec.shift_day else set()
    summaries = [device_day(pools["shifted" if d in reached else "base"],
                            np.random.default_rng([spec.seed, seed_tag, day, d]), spec, labels, channels,
                            f"dev-{d:05d}", spec.device_class or config.target_device, day)[0]
                 for d in range(devices)]
    return write_batch(out_dir, summaries, [], [])


def reference_summaries(config, pool: Sequence[PoolStream], spec: FleetSpec, days: int) -> List[Dict[str, Any]]:
    """The reference telemetry: ``days`` days of ``spec.devices`` other devices (``ref-*``) on the unshifted pool."""
    labels, channels = tuple(config.data.labels), tuple(config.family.telemetry_channels(config))
    return [device_day(pool, np.random.default_rng([spec.seed, REFERENCE_SEED_TAG, day, d]), spec, labels, channels,
                       f"ref-{d:05d}", spec.device_class or config.target_device, day)[0]
            for day in range(days) for d in range(spec.devices)]


def released_model(summary) -> Tuple[bytes, DeviceSettings]:
    """A local run's int8 model and the device settings its StreamingEvaluator chose (stride, threshold)."""
    from components.streaming_evaluator import postprocessing

    quantized = summary.artifact_uris.get("TFLiteQuantizer", {}).get("quantized_model")
    if not quantized or not summary.streaming:
        raise PipelineInputError(f"Run {summary.run_id} has no quantized model with a streaming evaluation to "
                                 "simulate; pass a run that reached the StreamingEvaluator, or a .tflite model.")
    with open(os.path.join(quantized, "model.tflite"), "rb") as f:
        model = f.read()
    with open(os.path.join(summary.streaming["uri"], postprocessing.REPORT_FILE), encoding="utf-8") as f:
        settings = json.load(f)["settings"]
    return model, DeviceSettings(
        inference_stride_ms=int(settings["inference_stride_ms"]), recognition=recognize.RecognitionSettings(
            int(settings["average_window_ms"]), int(settings["detection_threshold"]), int(settings["suppression_ms"]),
            int(settings["minimum_count"])), match_tolerance_ms=int(settings.get("tolerance_ms", 1000)))


def simulate(config, model: bytes, spec: FleetSpec, device: DeviceSettings, out_dir: str,
             reference_days: int = 0, log: Callable[[str], None] = lambda m: None) -> Dict[str, Any]:
    """Runs the fleet; writes ``day-NNN/`` batches (and ``reference/`` of ``reference_days`` days of other
    devices on the unshifted pool) under ``out_dir``; returns what was written (also in ``fleet.json``)."""
    family = config.family
    spec.check(tuple(family.field_shifts))
    labels, channels = tuple(config.data.labels), tuple(family.telemetry_channels(config))
    device_class = spec.device_class or config.target_device
    pools = build_pools(config, model, spec, device, log)
    reached = shifted_devices(spec, spec.devices)
    written = []
    for day in range(spec.days):
        summaries, events, files = [], [], []
        for d in range(spec.devices):
            shifted = bool(spec.shift) and day >= spec.shift_day and d in reached
            rng = np.random.default_rng([spec.seed, day, d])
            record, device_events, device_files = device_day(
                pools["shifted" if shifted else "base"], rng, spec, labels, channels, f"dev-{d:05d}",
                device_class, day)
            summaries.append(record)
            events += device_events
            files += device_files
        written.append(write_batch(os.path.join(out_dir, f"day-{day:03d}"), summaries, events, files))
    reference = None
    if reference_days:
        reference = write_batch(os.path.join(out_dir, "reference"),
                                reference_summaries(config, pools["base"], spec, reference_days), [], [])
    manifest = {"spec": dataclasses.asdict(spec), "device": dataclasses.asdict(device), "days": written,
                "reference": reference, "reference_days": reference_days, "labels": list(labels),
                "synthetic": True, "ground_truth": GROUND_TRUTH}
    with open(os.path.join(out_dir, "fleet.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest
