"""TFLiteQuantizer executor: moves artifacts in and out of quantize.py and codegen.py."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import model_evaluation
from components.blessing import write_blessing
from components.tflite_quantizer import codegen, quantize
from components.tflite_quantizer import labels as labels_lib
from components.tflm import model as tflm_model, ops as tflm_ops

# Input, output and parameter keys.
MODEL_KEY = "model"
EXAMPLES_KEY = "examples"
TRANSFORM_GRAPH_KEY = "transform_graph"
QUANTIZED_MODEL_KEY = "quantized_model"
BLESSING_KEY = "blessing"
MODE_KEY = "mode"
CALIBRATION_EXAMPLES_KEY = "calibration_examples"
MAX_ACCURACY_DROP_KEY = "max_accuracy_drop"
LABELS_KEY = "labels"
SIGNATURE_KEY = "signature"
SEED_KEY = "seed"

# The transformed features the Trainer's feature signature takes, and the label.
FEATURES_FEATURE = model_evaluation.FEATURES_FEATURE
LABEL_FEATURE = model_evaluation.LABEL_FEATURE
CALIBRATION_SPLIT = "train"
FIDELITY_SPLIT = "eval"

MODEL_FILE = "model.tflite"
FLOAT_MODEL_FILE = "model_float.tflite"
REPORT_FILE = "quantization_report.json"
# Files a trained model ships for firmware (e.g. a task's input normalization header), kept
# next to the SavedModel where TensorFlow does not load them; copied next to model_data.cc.
FIRMWARE_DIR = os.path.join("assets.extra", "firmware")


class Executor(base_executor.BaseExecutor):
    """Converts, checks on TFLite Micro, writes firmware sources, and blesses or not."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        transform_graph = artifact_utils.get_single_instance(input_dict[TRANSFORM_GRAPH_KEY])
        output = artifact_utils.get_single_instance(output_dict[QUANTIZED_MODEL_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[BLESSING_KEY])

        saved_model_dir = path_utils.serving_model_path(model.uri)
        signature = exec_properties[SIGNATURE_KEY]
        mode = exec_properties[MODE_KEY]
        labels = json.loads(exec_properties[LABELS_KEY])
        feature_spec = tft.TFTransformOutput(transform_graph.uri).transformed_feature_spec()
        shape = quantize.feature_shape(saved_model_dir, signature)

        calibration = self._calibration_examples(examples, feature_spec, shape,
                                                 int(exec_properties[CALIBRATION_EXAMPLES_KEY]),
                                                 int(exec_properties[SEED_KEY]))

        started = time.time()
        quantized = quantize.convert(saved_model_dir, signature, mode, calibration)
        conversion_seconds = time.time() - started
        float_model = quantize.convert(saved_model_dir, signature, None)
        tflm_ops.check_supported(tflm_model.describe(quantized)["ops"])

        fidelity = self._fidelity(saved_model_dir, signature, quantized,
                                  artifact_utils.get_split_uri([examples], FIDELITY_SPLIT), feature_spec, shape, labels)
        report = self._report(quantized, float_model, saved_model_dir, mode, len(calibration),
                              conversion_seconds, fidelity)
        firmware = {**_firmware_files(saved_model_dir),
                    labels_lib.HEADER_FILE: labels_lib.header(labels).encode(),
                    labels_lib.MAPPING_FILE: labels_lib.mapping_json(labels).encode()}
        report["firmware_files"] = sorted(firmware)
        self._write_model_files(output.uri, quantized, float_model, report, firmware)
        self._set_properties(output, mode, report, fidelity)

        reasons = self._refusals(fidelity, float(exec_properties[MAX_ACCURACY_DROP_KEY]))
        write_blessing(blessing, output.uri, reasons, "within the accuracy budget", "TFLiteQuantizer")

    def _calibration_examples(self, examples, feature_spec, shape, count: int, seed: int) -> np.ndarray:
        """Up to ``count`` train examples, the classes in their proportions: the labels are read first,
        then only the chosen examples' features (the split is never held whole)."""
        split_uri = artifact_utils.get_split_uri([examples], CALIBRATION_SPLIT)
        chosen = quantize.stratified_indices(model_evaluation.split_labels(split_uri, feature_spec), count, seed)
        features, _ = model_evaluation.load_split(split_uri, feature_spec, shape, indices=chosen)
        return features

    def _fidelity(self, saved_model_dir, signature, quantized, split_uri, feature_spec, shape,
                  labels) -> model_evaluation.Fidelity:
        result = model_evaluation.evaluate_split(split_uri, feature_spec, shape, saved_model_dir, signature,
                                                 quantized, labels)
        if result.tflm_tflite_disagreements:
            logging.warning("TFLite Micro and the desktop TFLite interpreter disagree on %d of %d eval "
                            "examples (largest output difference %.4f).", result.tflm_tflite_disagreements,
                            result.examples, result.tflm_tflite_max_abs_diff)
        return result

    def _report(self, quantized, float_model, saved_model_dir, mode, calibration_count, seconds,
                fidelity) -> Dict[str, Any]:
        import tflite_micro

        loaded = tf.saved_model.load(saved_model_dir)
        parameters = int(sum(np.prod(v.shape) for v in loaded.trainable_variables))
        info = tflm_model.describe(quantized)
        return {
            "mode": mode,
            **info,
            "float_model_bytes": len(float_model),
            "parameters": parameters,
            "bytes_per_parameter": len(quantized) / max(parameters, 1),
            "calibration_examples": calibration_count,
            "conversion_seconds": round(seconds, 3),
            "tensorflow_version": tf.__version__,
            "converter": f"tf.lite.TFLiteConverter (TensorFlow {tf.__version__})",
            "tflite_micro_version": getattr(tflite_micro, "__version__", "unknown"),
            "fidelity": fidelity.to_dict(),
        }

    def _write_model_files(self, uri: str, quantized: bytes, float_model: bytes, report: Dict[str, Any],
                           firmware: Dict[str, bytes]) -> None:
        tf.io.gfile.makedirs(uri)
        files = {
            **firmware,
            MODEL_FILE: quantized,
            FLOAT_MODEL_FILE: float_model,
            "model_data.cc": codegen.model_data_cc(quantized).encode(),
            "model_data.h": codegen.model_data_h(len(quantized)).encode(),
            "micro_op_resolver.h": codegen.micro_op_resolver_h(o["name"] for o in report["ops"]).encode(),
            REPORT_FILE: json.dumps(report, indent=2, sort_keys=True).encode(),
        }
        for name, content in files.items():
            with tf.io.gfile.GFile(os.path.join(uri, name), "wb") as f:
                f.write(content)

    def _set_properties(self, output, mode: str, report: Dict[str, Any], fidelity: model_evaluation.Fidelity) -> None:
        output.set_string_custom_property("mode", mode)
        output.set_int_custom_property("model_bytes", report["model_bytes"])
        output.set_float_custom_property("float_accuracy", fidelity.float_accuracy)
        output.set_float_custom_property("quantized_accuracy", fidelity.quantized_accuracy)
        output.set_float_custom_property("accuracy_drop", fidelity.accuracy_drop)
        output.set_float_custom_property("agreement", fidelity.agreement)
        output.set_string_custom_property("ops", ",".join(f"{o['name']}:{o['version']}" for o in report["ops"]))
        output.set_int_custom_property("tflm_tflite_disagreements", fidelity.tflm_tflite_disagreements)

    def _refusals(self, fidelity: model_evaluation.Fidelity, max_drop: float) -> List[str]:
        """Why the quantized model must not ship; empty when it may."""
        reasons = []
        if fidelity.collapsed:
            reasons.append(f"the quantized model predicts one class for {fidelity.majority_share:.0%} of the "
                           "eval examples (collapsed)")
        if fidelity.accuracy_drop > max_drop:
            reasons.append(f"accuracy drops by {100 * fidelity.accuracy_drop:.2f} points "
                           f"({fidelity.float_accuracy:.4f} -> {fidelity.quantized_accuracy:.4f}), more than the "
                           f"{100 * max_drop:.2f} allowed")
        return reasons


def _firmware_files(saved_model_dir: str) -> Dict[str, bytes]:
    """The files under the SavedModel's ``FIRMWARE_DIR``, by name (none for most models)."""
    folder = os.path.join(saved_model_dir, FIRMWARE_DIR)
    if not tf.io.gfile.isdir(folder):
        return {}
    files = {}
    for name in sorted(tf.io.gfile.listdir(folder)):
        with tf.io.gfile.GFile(os.path.join(folder, name), "rb") as f:
            files[name] = f.read()
    return files
