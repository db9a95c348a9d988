"""StreamingEvaluator executor: reads the model and the target's latency, evaluates, writes the verdict."""

from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.blessing import write_blessing
from components.streaming_evaluator import evaluate, labels_file, postprocessing

QUANTIZED_MODEL_KEY = "quantized_model"
DEVICE_REPORT_KEY = "device_report"
EVALUATION_KEY = "evaluation"
BLESSING_KEY = "blessing"
LABELS_KEY = "labels"
KEYWORDS_KEY = "keywords"
SOURCE_MODULE_KEY = "source_module"
SOURCE_SETTINGS_KEY = "source_settings"
AVERAGE_WINDOW_MS_KEY = "average_window_ms"
SUPPRESSION_MS_KEY = "suppression_ms"
MINIMUM_COUNT_KEY = "minimum_count"
INFERENCE_STRIDE_MS_KEY = "inference_stride_ms"
TOLERANCE_MS_KEY = "tolerance_ms"
MAX_FALSE_ACCEPTS_PER_HOUR_KEY = "max_false_accepts_per_hour"
MAX_FALSE_REJECT_RATE_KEY = "max_false_reject_rate"
WORKERS_KEY = "workers"

MODEL_FILE = "model.tflite"
SCORES_FILE = "scores.npz"
STREAMS_DIR = "streams"
LATENCY_PROPERTY = "latency_ms"   # the McuSizeGate report's estimate for the target board


def write_evaluation(uri: str, report: Dict[str, Any]) -> Dict[str, Any]:
    """Writes a report of ``evaluate.evaluate`` into ``uri``; returns it without the raw scores."""
    raw, events = report.pop("_scores"), report.pop("_events")
    tf.io.gfile.makedirs(os.path.join(uri, STREAMS_DIR))
    with tf.io.gfile.GFile(os.path.join(uri, postprocessing.REPORT_FILE), "w") as f:
        json.dump(report, f, indent=2)
    with tf.io.gfile.GFile(os.path.join(uri, postprocessing.HEADER_FILE), "w") as f:
        f.write(postprocessing.header(report))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{f"{name}.{part}": array for name, (times, scores) in raw.items()
                                   for part, array in (("times_ms", times), ("scores", scores))})
    with tf.io.gfile.GFile(os.path.join(uri, SCORES_FILE), "wb") as f:
        f.write(buffer.getvalue())
    for stream, stream_events in events.items():
        with tf.io.gfile.GFile(os.path.join(uri, STREAMS_DIR, stream + ".labels.txt"), "w") as f:
            f.write(labels_file.render(stream_events))
    return report


class Executor(base_executor.BaseExecutor):
    """Evaluates the quantized model on continuous audio and blesses it when the requirements hold."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        quantized = artifact_utils.get_single_instance(input_dict[QUANTIZED_MODEL_KEY])
        evaluation = artifact_utils.get_single_instance(output_dict[EVALUATION_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[BLESSING_KEY])
        with tf.io.gfile.GFile(os.path.join(quantized.uri, MODEL_FILE), "rb") as f:
            model = f.read()
        latency = None
        reports = input_dict.get(DEVICE_REPORT_KEY) or []
        if reports and reports[0].has_custom_property(LATENCY_PROPERTY):
            latency = float(reports[0].get_float_custom_property(LATENCY_PROPERTY))
        settings = evaluate.StreamingSettings(
            average_window_ms=int(exec_properties[AVERAGE_WINDOW_MS_KEY]),
            suppression_ms=int(exec_properties[SUPPRESSION_MS_KEY]),
            minimum_count=int(exec_properties[MINIMUM_COUNT_KEY]),
            inference_stride_ms=int(exec_properties.get(INFERENCE_STRIDE_MS_KEY) or 0),
            tolerance_ms=int(exec_properties[TOLERANCE_MS_KEY]))
        requirements = evaluate.StreamingRequirements(
            float(exec_properties[MAX_FALSE_ACCEPTS_PER_HOUR_KEY]), float(exec_properties[MAX_FALSE_REJECT_RATE_KEY]))
        workers = int(exec_properties.get(WORKERS_KEY) or 0) or len(os.sched_getaffinity(0))  # the cores this pod has
        report = evaluate.evaluate(
            model, json.loads(exec_properties[LABELS_KEY]), json.loads(exec_properties[KEYWORDS_KEY]),
            exec_properties[SOURCE_MODULE_KEY], json.loads(exec_properties[SOURCE_SETTINGS_KEY]), settings,
            requirements, workers=workers, target_latency_ms=latency,
            log=lambda message: logging.info("StreamingEvaluator: %s", message))
        report = write_evaluation(evaluation.uri, report)
        point = report["operating_point"]
        evaluation.set_int_custom_property("detection_threshold", int(point["threshold"]))
        evaluation.set_float_custom_property("false_accepts_per_hour", float(point["false_accepts_per_hour"]))
        evaluation.set_float_custom_property("false_reject_rate", float(point["false_reject_rate"]))
        evaluation.set_int_custom_property("inference_stride_ms", int(report["settings"]["inference_stride_ms"]))
        evaluation.set_float_custom_property("audio_seconds", float(report["composition"]["audio_seconds"]))
        evaluation.set_float_custom_property("wall_seconds", float(report["timing"]["wall_seconds"]))
        write_blessing(blessing, quantized.uri, report["refusals"],
                       f"{point['false_accepts_per_hour']:.2f} false accepts per hour, false-reject rate "
                       f"{point['false_reject_rate']:.3f} at threshold {point['threshold']}", "StreamingEvaluator")
