"""``tinyml-tfx stream-eval`` (a model on a long recording, as the device runs it) and
``tinyml-tfx data streams`` (the synthetic test streams, written out)."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

import click

from pipeline import config as config_lib
from pipeline.ui.cli_common import EXIT_USAGE, config_option, fail, paragraph

DETECTIONS_SHOWN = 25


def _load_config(config_path: str) -> config_lib.PipelineConfig:
    try:
        config = config_lib.load_config(config_path)
    except config_lib.ConfigError as err:
        fail(str(err), EXIT_USAGE)
    if not config.family.has_streaming_evaluator:
        fail(f"The config {config.source} is for task '{config.task}', which has no streaming evaluation (keyword "
             "spotting has). Pass --config with a keyword-spotting config.", EXIT_USAGE)
    return config


def _stride_ms(model: bytes, config: config_lib.PipelineConfig, requested: Optional[int], shipped) -> tuple:
    """The inference stride and where it comes from: the option, the release, the config, or the target's latency."""
    if requested:
        return requested, "--stride-ms"
    if shipped:
        return int(shipped["settings"]["inference_stride_ms"]), "the release's postprocessing.h"
    if config.streaming.inference_stride_ms:
        return config.streaming.inference_stride_ms, f"streaming.inference_stride_ms in {config.source}"
    from components.errors import PipelineInputError
    from components.mcu_size_gate import devices, gate
    from components.streaming_evaluator import evaluate
    from components.mcu_size_gate.calibration import CalibrationError
    from components.tflm import TflmError

    try:
        profile = devices.get_profile(config.target_device, devices.load_catalogue(config.boards_dirs))
        latency = gate.analyse(model, [profile]).verdicts[0].latency_ms
    except (devices.DeviceProfileError, TflmError, CalibrationError) as err:
        raise PipelineInputError(f"Could not estimate the time per inference on {config.target_device} to set the "
                                 f"inference stride ({err}). Give --stride-ms.") from err

    return (evaluate.device_stride_ms(latency, config.features.stride_ms),
            f"{config.target_device}'s estimated {latency:.0f} ms per inference")


@click.command("stream-eval")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True),
              help="A .tflite model, or a folder holding model.tflite (a release as `tinyml-tfx pull` writes it).")
@click.option("--audio", "audio_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A long 16 kHz mono 16-bit WAV recording.")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Its label file: start<TAB>end<TAB>label per line, in seconds (Audacity's label format). "
                   "Without it, the recording is taken as keyword-free and every detection is a false accept.")
@config_option
@click.option("--threshold", type=click.IntRange(0, 255), default=None,
              help="Report the detections at this threshold (default: the release's, else the chosen one).")
@click.option("--stride-ms", type=click.IntRange(min=1), default=None,
              help="Run the model every this many ms (default: the release's, the config's, or as often as "
                   "the config's target board can).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the whole evaluation (DET curve, detections per keyword) here.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes running TFLite Micro.")
def stream_eval_command(model_path, audio_path, labels_path, config_path, threshold, stride_ms, json_path,
                        workers) -> None:
    """Run a model on a long recording as the device does (front end frame by frame, the int8 model on
    TFLite Micro at the inference stride, micro_speech's RecognizeCommands) and report detections, false
    accepts per hour, the false-reject rate and the delay against the label file."""
    from components.audio_example_gen.layout import SILENCE_LABEL, UNKNOWN_LABEL
    from components.errors import PipelineInputError
    from components.streaming_evaluator import evaluate, model_files

    config = _load_config(config_path)
    try:
        files = model_files.read_model(model_path)
        shipped = files.shipped
        labels = files.labels or list(config.data.labels)
        keywords = [label for label in labels if label not in (SILENCE_LABEL, UNKNOWN_LABEL)]
        stride, stride_source = _stride_ms(files.model, config, stride_ms, shipped)
        module, source_settings = config.family.recording_source(
            config, [(audio_path, labels_path)], shipped["source"]["settings"] if shipped else None)
        shipped_settings = shipped["settings"] if shipped else dataclasses.asdict(config.streaming)
        settings = evaluate.StreamingSettings(
            average_window_ms=int(shipped_settings["average_window_ms"]),
            suppression_ms=int(shipped_settings["suppression_ms"]),
            minimum_count=int(shipped_settings["minimum_count"]), inference_stride_ms=stride,
            tolerance_ms=int(shipped_settings["tolerance_ms"]))
        requirements = evaluate.StreamingRequirements(config.requirements.max_false_accepts_per_hour,
                                                      config.requirements.max_false_reject_rate)
        shown = threshold
        if shown is None and shipped:
            shown = int(shipped["operating_point"]["threshold"])
        report = evaluate.evaluate(files.model, labels, keywords, module, source_settings, settings, requirements,
                                   workers=workers, list_threshold=shown)
    except PipelineInputError as err:
        fail(str(err), EXIT_USAGE)
    report.pop("_scores"), report.pop("_events")
    timing, composition, point = report["timing"], report["composition"], report["operating_point"]
    click.echo(f"{audio_path}: {composition['audio_seconds']:.1f} s, {composition['keyword_occurrences']} labelled "
               f"keyword occurrence(s) ({', '.join(keywords)}); {timing['inferences']} inferences on TFLite Micro, "
               f"one every {stride} ms ({stride_source}); {timing['wall_seconds']:.1f} s "
               f"({timing['realtime_factor']}x real time)")
    listed = report["detections"]
    rows = listed["detections"]
    false_accepts = sum(1 for r in rows if "false_accept" in r)
    found = len(rows) - false_accepts
    occurrences = composition["keyword_occurrences"]
    source = "--threshold" if threshold is not None else "the release's" if shipped else "the chosen"
    click.echo(f"At {source} threshold {listed['threshold']}: {len(rows)} detection(s), {false_accepts} false "
               f"accept(s) = {false_accepts / (composition['audio_seconds'] / 3600):.2f} per hour; "
               + (f"false-reject rate {(occurrences - found) / occurrences:.3f} ({occurrences - found} of "
                  f"{occurrences} missed)" if occurrences else "no keyword labelled, so no false-reject rate"))
    click.echo(paragraph(
        f"Chosen threshold for at most {requirements.max_false_accepts_per_hour:g} false accepts per hour: "
        f"{point['threshold']} ({point['false_accepts_per_hour']:.2f} per hour, false-reject rate "
        f"{point['false_reject_rate']:.3f}); " + ("meets" if report["blessed"] else "does not meet")
        + f" max_false_reject_rate {requirements.max_false_reject_rate:g}."))
    for r in rows[:DETECTIONS_SHOWN]:
        what = (f"finds the word at {r['found']['start_ms'] / 1000:.2f} s" if "found" in r
                else f"FALSE ACCEPT ({r['false_accept']})")
        click.echo(f"  {r['time_ms'] / 1000:9.2f} s  {r['label']:<12} score {r['score']:3d}  {what}")
    if len(rows) > DETECTIONS_SHOWN:
        click.echo(f"  ... {len(rows) - DETECTIONS_SHOWN} more" + (" (all in --json)" if json_path else ""))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        click.echo(f"Written: {json_path}")


@click.command("streams")
@config_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where the WAV files and their label files go.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Minutes of audio (default: the config's streaming.minutes).")
def data_streams_command(config_path: str, out_dir: str, minutes: Optional[float]) -> None:
    """Write the config's synthetic test streams: WAV files with their label files beside them."""
    config = _load_config(config_path)
    if minutes:
        config = dataclasses.replace(config, streaming=dataclasses.replace(config.streaming, minutes=minutes))
    paths = config.family.write_streams(config, out_dir)
    click.echo(f"Wrote {len(paths)} stream(s) to {out_dir}, each with its label file beside it")
