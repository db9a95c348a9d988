"""TestSetEvaluator executor: the float model and the int8 flatbuffer on the test split, once."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import model_evaluation
from components.tflm import model as tflm_model

MODEL_KEY = "model"
QUANTIZED_MODEL_KEY = "quantized_model"
EXAMPLES_KEY = "examples"
TRANSFORM_GRAPH_KEY = "transform_graph"
EVALUATION_KEY = "evaluation"
LABELS_KEY = "labels"
SIGNATURE_KEY = "signature"
TEST_SPLIT = "test"
REPORT_FILE = "test_report.json"


class Executor(base_executor.BaseExecutor):
    """Measures the released model on examples no decision has seen: the test split."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        quantized = artifact_utils.get_single_instance(input_dict[QUANTIZED_MODEL_KEY])
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        transform_graph = artifact_utils.get_single_instance(input_dict[TRANSFORM_GRAPH_KEY])
        output = artifact_utils.get_single_instance(output_dict[EVALUATION_KEY])
        labels = json.loads(exec_properties[LABELS_KEY])

        with tf.io.gfile.GFile(os.path.join(quantized.uri, "model.tflite"), "rb") as f:
            flatbuffer = f.read()
        shape = tflm_model.describe(flatbuffer)["inputs"][0]["shape"][1:]
        feature_spec = tft.TFTransformOutput(transform_graph.uri).transformed_feature_spec()
        result = model_evaluation.evaluate_split(
            artifact_utils.get_split_uri([examples], TEST_SPLIT), feature_spec, shape,
            path_utils.serving_model_path(model.uri), exec_properties[SIGNATURE_KEY], flatbuffer, labels)
        report = {"split": TEST_SPLIT, "labels": labels, **result.to_dict()}
        tf.io.gfile.makedirs(output.uri)
        with tf.io.gfile.GFile(os.path.join(output.uri, REPORT_FILE), "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
        output.set_int_custom_property("examples", result.examples)
        output.set_float_custom_property("float_accuracy", result.float_accuracy)
        output.set_float_custom_property("quantized_accuracy", result.quantized_accuracy)
        logging.info("TestSetEvaluator: test split, %d examples: float %.4f, int8 on TFLite Micro %.4f.",
                     result.examples, result.float_accuracy, result.quantized_accuracy)
