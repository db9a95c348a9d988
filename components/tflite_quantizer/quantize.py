"""TFLite conversion for microcontrollers, and the check that the int8 model still works.

No TFX here: everything takes arrays and paths, so it is tested on a tiny Keras model.

Conversion starts from the Trainer's SavedModel signature that takes the feature map
(not from a Keras object): with TF >= 2.16 the converter is unreliable on Keras
models, and the signature is exactly what runs on the device. The signature is
re-traced with batch size 1, as firmware runs it, which also lets the converter fold
away the shape arithmetic of a dynamic batch (SHAPE, STRIDED_SLICE, PACK ops that
would cost flash for nothing).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from components.tflm import runtime

MODES = ("int8", "float16", "dynamic_range")
# A model whose int8 predictions fall on one class this often has collapsed.
COLLAPSE_SHARE = 0.9


class QuantizationError(ValueError):
    """Conversion failed (a model TFLite Micro cannot run is a ``components.tflm.TflmError``)."""


def _batch_one_function(saved_model_dir: str, signature: str):
    loaded = tf.saved_model.load(saved_model_dir)
    if signature not in loaded.signatures:
        raise QuantizationError(
            f"The SavedModel at {saved_model_dir} has no signature '{signature}' (it has "
            f"{', '.join(sorted(loaded.signatures))}). The Trainer must export the feature-tensor signature.")
    fn = loaded.signatures[signature]
    (input_name, spec), = fn.structured_input_signature[1].items()
    fixed = tf.TensorSpec([1] + spec.shape.as_list()[1:], spec.dtype, name=input_name)
    wrapped = tf.function(lambda x: fn(**{input_name: x}), input_signature=[fixed])
    return loaded, wrapped.get_concrete_function()


def feature_shape(saved_model_dir: str, signature: str) -> List[int]:
    """The per-example input shape of ``signature`` (e.g. [49, 40])."""
    loaded = tf.saved_model.load(saved_model_dir)
    (_, spec), = loaded.signatures[signature].structured_input_signature[1].items()
    return spec.shape.as_list()[1:]


def convert(saved_model_dir: str, signature: str, mode: Optional[str],
            representative: Optional[np.ndarray] = None) -> bytes:
    """Converts the signature to a TFLite flatbuffer.

    Args:
        saved_model_dir: the Trainer's SavedModel.
        signature: the feature-tensor signature.
        mode: ``int8`` (full-integer, int8 input and output), ``float16``,
            ``dynamic_range``, or None for the float reference.
        representative: calibration inputs ``[n, *feature_shape]`` (int8 only).
    """
    loaded, concrete = _batch_one_function(saved_model_dir, signature)
    return convert_function(concrete, loaded, mode, representative)


def convert_function(concrete, trackable, mode: Optional[str], representative: Optional[np.ndarray] = None) -> bytes:
    """Converts a batch-one concrete function (of ``trackable``'s variables) as ``convert`` does.

    The model search uses it on candidates that are not saved: the same converter settings,
    so a candidate is judged as the quantizer would ship it.
    """
    if mode is not None and mode not in MODES:
        raise QuantizationError(f"Unknown quantization mode '{mode}'; choose one of {', '.join(MODES)}.")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], trackable)
    if mode == "int8":
        if representative is None or len(representative) == 0:
            raise QuantizationError("Full-integer quantization needs calibration examples; none were given.")

        def calibration():
            for example in representative:
                yield [example[np.newaxis].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        return converter.convert()
    except Exception as err:  # the converter raises several unrelated types
        raise QuantizationError(f"The TFLite converter failed ({mode or 'float'}): {err}") from err


def predict_tflite(model: bytes, features: np.ndarray) -> np.ndarray:
    """Float outputs of ``model`` on ``features`` under the desktop TFLite interpreter (the cross-check
    of TFLite Micro, which ``components.tflm.runtime.predict`` runs)."""
    interpreter = tf.lite.Interpreter(model_content=model)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def run_one(x):
        interpreter.set_tensor(input_index, x)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return runtime.predict(model, features, run_one)


def predict_saved_model(saved_model_dir: str, signature: str, features: np.ndarray,
                        batch_size: int = 256) -> np.ndarray:
    """Outputs of the float model (the Trainer's signature) on ``features``."""
    fn = tf.saved_model.load(saved_model_dir).signatures[signature]
    (input_name, _), = fn.structured_input_signature[1].items()
    outputs = []
    for start in range(0, len(features), batch_size):
        result = fn(**{input_name: tf.constant(features[start:start + batch_size], tf.float32)})
        outputs.append(next(iter(result.values())).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def stratified_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` indices with the classes in their proportions, chosen reproducibly."""
    rng = np.random.default_rng(seed)
    if count >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts / counts.sum() * count).astype(int))
    chosen = []
    for cls, n in zip(classes, quota):
        members = np.flatnonzero(labels == cls)
        chosen.extend(rng.choice(members, size=min(n, len(members)), replace=False))
    return np.sort(np.array(chosen[:max(count, len(classes))], dtype=int))


@dataclasses.dataclass
class Fidelity:
    """How the quantized model compares with the float one on the same examples."""

    examples: int
    float_accuracy: float
    quantized_accuracy: float
    accuracy_drop: float
    agreement: float
    per_class: Dict[str, Dict[str, float]]
    tflm_tflite_disagreements: int
    tflm_tflite_max_abs_diff: float
    collapsed: bool
    majority_share: float
    confusion_float: List[List[int]]
    confusion_quantized: List[List[int]]

    def to_dict(self) -> Dict[str, object]:
        return dataclasses.asdict(self)


def fidelity(labels: np.ndarray, float_probs: np.ndarray, tflm_probs: np.ndarray, tflite_probs: np.ndarray,
             class_names: Sequence[str]) -> Fidelity:
    """Compares float and int8 predictions on labelled examples.

    ``tflm_probs`` (TFLite Micro, what the device runs) is the quantized model's
    result; ``tflite_probs`` (desktop interpreter) is the cross-check.
    """
    float_pred = float_probs.argmax(axis=1)
    quant_pred = tflm_probs.argmax(axis=1)
    per_class = {}
    for index, name in enumerate(class_names):
        mask = labels == index
        if mask.any():
            per_class[name] = {"examples": int(mask.sum()),
                               "float_accuracy": float((float_pred[mask] == index).mean()),
                               "quantized_accuracy": float((quant_pred[mask] == index).mean())}
    float_accuracy = float((float_pred == labels).mean())
    quantized_accuracy = float((quant_pred == labels).mean())
    majority_share = float(np.bincount(quant_pred).max() / len(quant_pred))
    return Fidelity(
        examples=int(len(labels)),
        float_accuracy=float_accuracy,
        quantized_accuracy=quantized_accuracy,
        accuracy_drop=float_accuracy - quantized_accuracy,
        agreement=float((float_pred == quant_pred).mean()),
        per_class=per_class,
        tflm_tflite_disagreements=int((tflite_probs.argmax(axis=1) != quant_pred).sum()),
        tflm_tflite_max_abs_diff=float(np.abs(tflite_probs - tflm_probs).max()),
        collapsed=len(np.unique(labels)) > 1 and majority_share >= COLLAPSE_SHARE,
        majority_share=majority_share,
        confusion_float=confusion_matrix(labels, float_pred, len(class_names)),
        confusion_quantized=confusion_matrix(labels, quant_pred, len(class_names)),
    )


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> List[List[int]]:
    """Counts [true class][predicted class]."""
    matrix = np.zeros((classes, classes), dtype=int)
    for true, predicted in zip(labels, predictions):
        if 0 <= true < classes and 0 <= predicted < classes:
            matrix[true, predicted] += 1
    return matrix.tolist()
