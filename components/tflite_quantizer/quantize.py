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

import contextlib
import dataclasses
import os
import re
import tempfile
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema_fb

MODES = ("int8", "float16", "dynamic_range")
_OP_NAMES = {code: name for name, code in vars(schema_fb.BuiltinOperator).items() if not name.startswith("_")}
_TENSOR_TYPES = {code: name for name, code in vars(schema_fb.TensorType).items() if not name.startswith("_")}
# A model whose int8 predictions fall on one class this often has collapsed.
COLLAPSE_SHARE = 0.9


class QuantizationError(ValueError):
    """Conversion failed, or the converted model cannot run on TFLite Micro."""


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


def _tensor_info(subgraph, index: int) -> Dict[str, object]:
    tensor = subgraph.Tensors(index)
    q = tensor.Quantization()
    scales = [float(q.Scale(i)) for i in range(q.ScaleLength())] if q else []
    zero_points = [int(q.ZeroPoint(i)) for i in range(q.ZeroPointLength())] if q else []
    return {
        "name": tensor.Name().decode(),
        "shape": [int(tensor.Shape(i)) for i in range(tensor.ShapeLength())],
        "dtype": _TENSOR_TYPES.get(tensor.Type(), str(tensor.Type())).lower(),
        "scale": scales[0] if len(scales) == 1 else scales,
        "zero_point": zero_points[0] if len(zero_points) == 1 else zero_points,
    }


def describe(model: bytes) -> Dict[str, object]:
    """What firmware needs to know of a flatbuffer: ops with versions, tensors, I/O quantization."""
    root = schema_fb.Model.GetRootAsModel(model, 0)
    ops = []
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if builtin == schema_fb.BuiltinOperator.CUSTOM:
            name = f"CUSTOM:{code.CustomCode().decode()}"
        ops.append({"name": name, "version": int(code.Version())})
    subgraph = root.Subgraphs(0)
    return {
        "model_bytes": len(model),
        "ops": sorted(ops, key=lambda o: o["name"]),
        "operator_count": sum(root.Subgraphs(s).OperatorsLength() for s in range(root.SubgraphsLength())),
        "tensor_count": sum(root.Subgraphs(s).TensorsLength() for s in range(root.SubgraphsLength())),
        "inputs": [_tensor_info(subgraph, subgraph.Inputs(i)) for i in range(subgraph.InputsLength())],
        "outputs": [_tensor_info(subgraph, subgraph.Outputs(i)) for i in range(subgraph.OutputsLength())],
    }


def quantize_input(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """Float features to the model's integer input: round(x / scale) + zero_point, saturated."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The model's integer output back to float: (q - zero_point) * scale."""
    return (q.astype(np.float32) - zero_point) * scale


def _predict(model: bytes, features: np.ndarray, run_one: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    info = describe(model)
    inp, out = info["inputs"][0], info["outputs"][0]
    results = []
    for example in features:
        x = example[np.newaxis].astype(np.float32)
        if inp["dtype"] == "int8":
            x = quantize_input(x, inp["scale"], inp["zero_point"])
        y = np.asarray(run_one(x)).reshape(-1)
        if out["dtype"] == "int8":
            y = dequantize(y, out["scale"], out["zero_point"])
        results.append(y.astype(np.float32))
    return np.stack(results) if results else np.zeros((0, 0), np.float32)


@contextlib.contextmanager
def captured_c_stderr():
    """Captures what C code writes to file descriptor 2 (TFLite Micro's log) into a list of lines.

    TFLM reports which kernel failed only there, not in the Python exception.
    """
    lines: List[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def tflm_interpreter(model: bytes, arena_size: Optional[int] = None):
    """A TFLite Micro interpreter (the reference kernels the device runs) for ``model``.

    Raises:
        QuantizationError: naming the failing op, when TFLite Micro cannot load the model.
    """
    from tflite_micro.python.tflite_micro import runtime

    with captured_c_stderr() as log:
        try:
            return runtime.Interpreter.from_bytes(model, arena_size=arena_size or max(len(model) * 10, 256 * 1024))
        except RuntimeError as err:
            failure = err
    failed_ops = sorted({m.group(1) for line in log for m in [re.search(r"Node (\w+) \(number \d+\) failed", line)] if m})
    details = "; ".join(line for line in log if line.strip())[:600]
    ops = ", ".join(f"{o['name']} v{o['version']}" for o in describe(model)["ops"])
    named = f" The failing op: {', '.join(failed_ops)}." if failed_ops else ""
    raise QuantizationError(
        f"TensorFlow Lite Micro cannot load the converted model ({failure}).{named} TFLM says: {details}. "
        f"The model's ops: {ops}. TFLite Micro runs float32 and int8 kernels only (no float16 weights, "
        "no hybrid dynamic-range kernels); use mode int8, or replace the op.") from failure


def predict_tflm(model: bytes, features: np.ndarray) -> np.ndarray:
    """Float outputs of ``model`` on ``features`` under TFLite Micro (inputs quantized, outputs dequantized)."""
    interpreter = tflm_interpreter(model)

    def run_one(x):
        interpreter.set_input(x, 0)
        interpreter.invoke()
        return interpreter.get_output(0)

    return _predict(model, features, run_one)


def predict_tflite(model: bytes, features: np.ndarray) -> np.ndarray:
    """Float outputs of ``model`` on ``features`` under the desktop TFLite interpreter."""
    interpreter = tf.lite.Interpreter(model_content=model)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def run_one(x):
        interpreter.set_tensor(input_index, x)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return _predict(model, features, run_one)


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


def op_names(model: bytes) -> List[str]:
    return [o["name"] for o in describe(model)["ops"]]


def check_tflm_ops(model: bytes, known_ops: Iterable[str]) -> None:
    """Raises QuantizationError naming any op outside ``known_ops`` (TFLM's kernels)."""
    known = set(known_ops)
    missing = [o for o in describe(model)["ops"] if o["name"] not in known]
    if missing:
        raise QuantizationError(
            "The converted model uses op(s) TensorFlow Lite Micro cannot load: "
            + ", ".join(f"{o['name']} (version {o['version']})" for o in missing)
            + ". Change the model so the converter emits supported builtin ops.")
