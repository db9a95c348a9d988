"""What a release carries of the streaming evaluation: ``postprocessing.h``, the report, annotations
and the model card's streaming section. Plain library (the OtaPusher calls ``add_to_release``)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Callable, Dict, Mapping, MutableMapping

from components.ota.model_card import MODEL_CARD_FILE
from components.streaming_evaluator import card, postprocessing

PREFIX = "dev.tinyml-tfx."
POSTPROCESSING_SHA256_ANNOTATION = PREFIX + "postprocessing.sha256"
THRESHOLD_ANNOTATION = PREFIX + "postprocessing.detection-threshold"
AVERAGE_WINDOW_ANNOTATION = PREFIX + "postprocessing.average-window-ms"
SUPPRESSION_ANNOTATION = PREFIX + "postprocessing.suppression-ms"
MINIMUM_COUNT_ANNOTATION = PREFIX + "postprocessing.minimum-count"
STRIDE_ANNOTATION = PREFIX + "postprocessing.inference-stride-ms"
FALSE_ACCEPTS_ANNOTATION = PREFIX + "streaming.false-accepts-per-hour"
FALSE_REJECT_ANNOTATION = PREFIX + "streaming.false-reject-rate"
AUDIO_HOURS_ANNOTATION = PREFIX + "streaming.audio-hours"
LINEAGE_ANNOTATION = PREFIX + "streaming.mlmd"   # ML Metadata ids of the evaluation and its blessing


def _read(folder: str, name: str) -> bytes:
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(folder, name), "rb") as f:
        return f.read()


def annotations_of(header: bytes, report: Mapping) -> Dict[str, str]:
    """The annotations a fleet reads the detection settings and their measured figures from."""
    settings = postprocessing.settings_of(report)
    point = report["operating_point"]
    return {
        POSTPROCESSING_SHA256_ANNOTATION: hashlib.sha256(header).hexdigest(),
        THRESHOLD_ANNOTATION: str(settings["kDetectionThreshold"]),
        AVERAGE_WINDOW_ANNOTATION: str(settings["kAverageWindowDurationMs"]),
        SUPPRESSION_ANNOTATION: str(settings["kSuppressionMs"]),
        MINIMUM_COUNT_ANNOTATION: str(settings["kMinimumCount"]),
        STRIDE_ANNOTATION: str(settings["kInferenceStrideMs"]),
        FALSE_ACCEPTS_ANNOTATION: f"{point['false_accepts_per_hour']:.4f}",
        FALSE_REJECT_ANNOTATION: f"{point['false_reject_rate']:.4f}",
        AUDIO_HOURS_ANNOTATION: f"{report['composition']['audio_seconds'] / 3600:.4f}",
    }


def add_to_release(files: MutableMapping[str, bytes], annotations: MutableMapping[str, str], evaluation_dir: str,
                   ml_metadata_ids: Mapping[str, int]) -> None:
    """Adds ``postprocessing.h`` and ``streaming_report.json`` to ``files``, the settings and figures to
    ``annotations``, and the streaming section to the model card when the release has one."""
    header = _read(evaluation_dir, postprocessing.HEADER_FILE)
    report_bytes = _read(evaluation_dir, postprocessing.REPORT_FILE)
    report = json.loads(report_bytes)
    files[postprocessing.HEADER_FILE] = header
    files[postprocessing.REPORT_FILE] = report_bytes
    annotations.update(annotations_of(header, report))
    annotations[LINEAGE_ANNOTATION] = json.dumps(dict(ml_metadata_ids), sort_keys=True)
    if MODEL_CARD_FILE in files:
        files[MODEL_CARD_FILE] = card.insert_section(files[MODEL_CARD_FILE].decode(), report).encode()


def addition(evaluation_dir: str, evaluation_id: int, blessing_id: int) -> Callable[[MutableMapping[str, bytes],
                                                                                MutableMapping[str, str]], None]:
    """``add_to_release`` for one StreamingEvaluator run (its ``evaluation`` folder and the ML Metadata
    ids of its evaluation and blessing), in the shape ``publish.RunArtifacts.additions`` takes."""
    return functools.partial(add_to_release, evaluation_dir=evaluation_dir,
                             ml_metadata_ids={"streaming_evaluation": evaluation_id, "streaming_blessing": blessing_id})
