"""The TFLite Micro pieces the StreamingEvaluator uses, in one module.

The project's interpreter helpers live in ``components/tflite_quantizer/quantize.py`` (they
import TensorFlow); they are imported here, inside the functions that run in the executor's
process, and nowhere else in this component. Worker processes run ``run_windows``, which
uses the TFLM Python runtime alone, so they start without TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np

from components.errors import PipelineInputError


@dataclasses.dataclass(frozen=True)
class ModelIO:
    """The int8 model's input and output as the firmware sees them."""

    input_shape: Tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_classes: int

    @property
    def input_elements(self) -> int:
        return int(np.prod(self.input_shape))


def arena_bytes(model: bytes) -> int:
    """The tensor arena the quantizer's TFLM helper gives a model."""
    return max(len(model) * 10, 256 * 1024)


def model_io(model: bytes) -> ModelIO:
    """Checks that TFLite Micro runs ``model`` with int8 input and output, and describes them.

    Raises:
        PipelineInputError: when the model is not int8 in and out (RecognizeCommands averages int8
            scores), or TFLite Micro cannot load it (the quantizer's message, naming the op).
    """
    from components.tflm import TflmError, model as tflm_model, runtime as tflm_runtime

    try:
        info = tflm_model.describe(model)
    except TflmError as err:
        raise PipelineInputError(str(err)) from err
    inp, out = info["inputs"][0], info["outputs"][0]
    if inp["dtype"] != "int8" or out["dtype"] != "int8":
        raise PipelineInputError(
            f"The model takes {inp['dtype']} and gives {out['dtype']}, but a device running micro_speech's "
            "RecognizeCommands feeds int8 features and averages int8 scores. Set quantization.mode to int8.")
    try:
        tflm_runtime.interpreter(model, arena_size=arena_bytes(model))
    except TflmError as err:
        raise PipelineInputError(str(err)) from err
    return ModelIO(tuple(inp["shape"]), float(inp["scale"]), int(inp["zero_point"]), int(np.prod(out["shape"])))


def quantize_frames(frames: np.ndarray, io: ModelIO) -> np.ndarray:
    """Float front-end frames to the model's int8 input scale (element-wise, so per frame as per window)."""
    from components.tflm import runtime as tflm_runtime

    return tflm_runtime.quantize_input(frames, io.input_scale, io.input_zero_point)


def run_windows(model: bytes, frames: np.ndarray, ends: np.ndarray, per_window: int,
                input_shape: Tuple[int, ...]) -> np.ndarray:
    """Invokes the model on TFLite Micro once per window (the ``per_window`` frames ending at each
    index of ``ends``): int8 scores [len(ends), classes]. Runs in worker processes."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_bytes(model))
    scores = []
    for end in ends:
        interpreter.set_input(frames[end - per_window + 1:end + 1].reshape(input_shape), 0)
        interpreter.invoke()
        scores.append(np.asarray(interpreter.get_output(0), np.int8).reshape(-1))
    return np.stack(scores) if scores else np.zeros((0, 0), np.int8)
