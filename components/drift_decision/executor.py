"""DriftDecision executor: the field span's statistics against the reference's, and the retrain decision."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import tensorflow as tf
import tensorflow_data_validation as tfdv
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.drift_decision import drift

STATISTICS_KEY = "statistics"
REFERENCE_STATISTICS_KEY = "reference_statistics"
EXAMPLES_KEY = "examples"
DECISION_KEY = "decision"
SPLIT_KEY = "split"
CLASS_FEATURE_KEY = "class_feature"
SCORE_FEATURE_KEY = "score_feature"
NUMERIC_FEATURES_KEY = "numeric_features"
THRESHOLDS_KEY = "thresholds"
DECISION_FILE = "decision.json"
STATS_FILE = "FeatureStats.pb"


def _load(artifact, split: str):
    return tfdv.load_stats_binary(os.path.join(artifact_utils.get_split_uri([artifact], split), STATS_FILE))


class Executor(base_executor.BaseExecutor):
    """Compares with TFDV's drift comparators and writes the decision (``drift.decide``)."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        field = artifact_utils.get_single_instance(input_dict[STATISTICS_KEY])
        reference = artifact_utils.get_single_instance(input_dict[REFERENCE_STATISTICS_KEY])
        output = artifact_utils.get_single_instance(output_dict[DECISION_KEY])
        split = exec_properties[SPLIT_KEY]
        thresholds = drift.Thresholds(**json.loads(exec_properties[THRESHOLDS_KEY]))
        decision = drift.decide(_load(field, split), _load(reference, split), exec_properties[CLASS_FEATURE_KEY],
                                exec_properties[SCORE_FEATURE_KEY], json.loads(exec_properties[NUMERIC_FEATURES_KEY]),
                                thresholds)
        decision["field_statistics"] = field.uri
        decision["reference_statistics"] = reference.uri
        if input_dict.get(EXAMPLES_KEY):
            examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
            decision["field_span"] = int(examples.get_int_custom_property("span"))
            decision["field_examples"] = examples.uri
        tf.io.gfile.makedirs(output.uri)
        with tf.io.gfile.GFile(os.path.join(output.uri, DECISION_FILE), "w") as f:
            json.dump(decision, f, indent=2, sort_keys=True)
        output.set_int_custom_property("retrain", int(decision["retrain"]))
        output.set_string_custom_property("reason", decision["reason"])
        output.set_string_custom_property("drifting_features", ",".join(decision["drifting_features"]))
        logging.info("DriftDecision: retrain=%s: %s", decision["retrain"], decision["reason"])
