"""How a float model and its TFLite flatbuffer do on labelled examples: shared by the quantizer and the test evaluation.

Plain library (TensorFlow, the desktop TFLite interpreter, TFLite Micro through
``components.tflm``); no TFX. The quantizer compares float and int8 on the eval split;
the TestSetEvaluator measures both once on the held-out test split.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from components import tfrecords
from components.tflm import runtime

COLLAPSE_SHARE = 0.9  # a model predicting one class for this share of the examples has collapsed
FEATURES_FEATURE = "features"   # the transformed model input
LABEL_FEATURE = "label_id"      # the transformed label


CHUNK_EXAMPLES = 4096   # examples held at once when a split is streamed (32 MB of 49x40 float features)


def _split_batches(split_uri: str, spec, batch_size: int) -> tf.data.Dataset:
    files = tf.io.gfile.glob(os.path.join(split_uri, "*"))
    if not files:
        raise ValueError(f"No transformed examples in {split_uri}.")
    return tfrecords.record_dataset(sorted(files)).batch(batch_size).map(
        lambda s: tf.io.parse_example(s, spec))


def split_labels(split_uri: str, feature_spec) -> np.ndarray:
    """The label of every example of one split, in file order (the features are not parsed).

    Raises:
        ValueError: the split has no examples.
    """
    batches = _split_batches(split_uri, {LABEL_FEATURE: feature_spec[LABEL_FEATURE]}, CHUNK_EXAMPLES)
    labels = [batch[LABEL_FEATURE].numpy().reshape(-1) for batch in batches]
    return np.concatenate(labels) if labels else np.zeros((0,), np.int64)


def iter_split(split_uri: str, feature_spec, shape, batch_size: int = CHUNK_EXAMPLES
               ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Transformed features (reshaped to the model input ``shape``) and labels of one split, a chunk at a time.

    Raises:
        ValueError: the split has no examples.
    """
    spec = {FEATURES_FEATURE: feature_spec[FEATURES_FEATURE], LABEL_FEATURE: feature_spec[LABEL_FEATURE]}
    for batch in _split_batches(split_uri, spec, batch_size):
        yield (batch[FEATURES_FEATURE].numpy().reshape([-1] + list(shape)).astype(np.float32),
               batch[LABEL_FEATURE].numpy().reshape(-1))


def load_split(split_uri: str, feature_spec, shape, indices: Optional[np.ndarray] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Transformed features of one split (Transform's gzipped TFRecords in ``split_uri``), reshaped to
    the model input ``shape``, and their labels: every example, or only those at ``indices``
    (increasing positions in file order, as ``split_labels`` numbers them). The split is streamed:
    only the examples kept are held.

    Raises:
        ValueError: the split has no examples, or ``indices`` are not increasing.
    """
    if indices is not None:
        indices = np.asarray(indices, dtype=np.int64)
        if np.any(np.diff(indices) <= 0):
            raise ValueError("load_split: indices must be increasing positions (as stratified_indices returns).")
    xs, ys, offset = [], [], 0
    for x, y in iter_split(split_uri, feature_spec, shape):
        chunk = len(y)
        if indices is not None:
            rows = indices[(indices >= offset) & (indices < offset + chunk)] - offset
            x, y = x[rows], y[rows]
        xs.append(x)
        ys.append(y)
        offset += chunk
    return np.concatenate(xs), np.concatenate(ys)


def evaluate_split(split_uri: str, feature_spec, shape, saved_model_dir: str, signature: str, flatbuffer: bytes,
                   class_names: Sequence[str]) -> "Fidelity":
    """``fidelity`` of the float model (its ``signature``) and the flatbuffer on every example of one split.

    The split is streamed ``CHUNK_EXAMPLES`` at a time: only the predictions are kept, so memory
    does not grow with the split. The quantized model runs on TFLite Micro, cross-checked by the
    desktop TFLite interpreter.

    Raises:
        ValueError: the split has no examples.
    """
    fn = tf.saved_model.load(saved_model_dir).signatures[signature]
    labels, float_probs, tflm_probs, tflite_probs = [], [], [], []
    for x, y in iter_split(split_uri, feature_spec, shape):
        labels.append(y)
        float_probs.append(_predict_signature(fn, x))
        tflm_probs.append(runtime.predict(flatbuffer, x))
        tflite_probs.append(predict_tflite(flatbuffer, x))
    return fidelity(np.concatenate(labels), np.concatenate(float_probs), np.concatenate(tflm_probs),
                    np.concatenate(tflite_probs), class_names)


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
    return _predict_signature(tf.saved_model.load(saved_model_dir).signatures[signature], features, batch_size)


def _predict_signature(fn, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    (input_name, _), = fn.structured_input_signature[1].items()
    outputs = []
    for start in range(0, len(features), batch_size):
        result = fn(**{input_name: tf.constant(features[start:start + batch_size], tf.float32)})
        outputs.append(next(iter(result.values())).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


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
