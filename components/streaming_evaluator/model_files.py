"""A model to evaluate on a recording: a ``.tflite`` file, or a folder that holds one (a release as
``tinyml-tfx pull`` writes it, or the quantizer's output) with its class names and, for a release,
the detection settings it was shipped with. Everything read here is untrusted input. Plain library."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

from components.errors import PipelineInputError
from components.streaming_evaluator import postprocessing

MODEL_FILE = "model.tflite"
LABELS_FILE = "model_labels.json"   # components/tflite_quantizer/labels.py's mapping


class ModelFilesError(PipelineInputError):
    """The model path holds no usable model; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    model: bytes
    path: str
    labels: Optional[List[str]]              # from model_labels.json, when there is one
    shipped: Optional[Dict[str, Any]]        # the release's streaming_report.json, when there is one


def _labels(path: str) -> Optional[List[str]]:
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
        ordered = sorted(rows, key=lambda row: int(row["index"]))
        labels = [str(row["label"]) for row in ordered]
        if [int(row["index"]) for row in ordered] != list(range(len(labels))):
            raise ValueError("the indices are not 0, 1, 2, ...")
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ModelFilesError(f"{path} is not a class list as the quantizer writes it ([{{\"index\": 0, \"label\": "
                              f"...}}, ...]): {err}. Remove it to take the class names from the config.") from None
    return labels


def _shipped(folder: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(folder, postprocessing.REPORT_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        postprocessing.settings_of(report)   # has the settings a device needs
        report["source"]["settings"]["frames"]["per_window"]
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ModelFilesError(f"{path} is not a StreamingEvaluator report ({type(err).__name__}: {err}). Pull the "
                              "release again, or point --model at the model.tflite alone.") from None
    return report


def read_model(path: str) -> ModelFiles:
    """The model at ``path`` (a .tflite file, or a folder with model.tflite) and what is beside it.

    Raises:
        ModelFilesError: when there is no model, or a file beside it is malformed.
    """
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    try:
        with open(model_path, "rb") as f:
            model = f.read()
    except OSError as err:
        raise ModelFilesError(f"No model at {model_path} ({err.strerror}). Give a .tflite file or a folder holding "
                              f"{MODEL_FILE} (a pulled release).") from None
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ModelFilesError(f"{model_path} is not a TFLite flatbuffer (no TFL3 identifier). Give the release's "
                              f"{MODEL_FILE}.")
    return ModelFiles(model, model_path, _labels(os.path.join(folder, LABELS_FILE)),
                      _shipped(folder) if os.path.isdir(path) else None)
