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

from typing import List, Optional

import numpy as np
import tensorflow as tf


MODES = ("int8", "float16", "dynamic_range")
# A model whose int8 predictions fall on one class this often has collapsed.


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
