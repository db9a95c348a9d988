"""An ExampleValidator executor that stops the run when the data has anomalies.

TFX's ExampleValidator records anomalies and lets the pipeline go on. For a model
that will be flashed to devices, training on data that breaks the curated schema
is worse than not training, so this executor does TFX's validation unchanged and
then fails the component with a readable list of what is wrong.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Tuple

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.example_validator import labels
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.components.util import value_utils
from tfx.types import artifact_utils, standard_component_specs

from components.data_validation_gate import class_counts
from components.errors import PipelineInputError


CLASS_COUNTS_KEY = "class_counts"   # JSON: {"classes": [...], "label_feature": "label", "minimums": {split: n}}


class DataAnomaliesError(PipelineInputError):
    """The examples do not match the curated schema."""


class TooFewExamplesError(PipelineInputError):
    """A split is empty, or a class has fewer examples in a split than the requirements ask."""


def describe_anomalies(found: List[Tuple[str, anomalies_pb2.Anomalies]]) -> str:
    """One line per anomalous feature: split, feature, short and long description."""
    lines = []
    for split, anomalies in found:
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(f"  split '{split}', feature '{feature}': {info.short_description}. "
                         f"{info.description}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"  split '{split}', whole dataset: {info.short_description}. {info.description}")
    return "\n".join(lines)


class Executor(example_validator_executor.Executor):
    """TFX's ExampleValidator, failing when any split has an anomaly."""

    def _Validate(self, inputs: Dict[str, Any], outputs: Dict[str, Any]) -> anomalies_pb2.Anomalies:
        anomalies = super()._Validate(inputs, outputs)
        split_dir = value_utils.GetSoleValue(outputs, labels.SCHEMA_DIFF_PATH)
        split = os.path.basename(split_dir.rstrip("/")).removeprefix("Split-")
        if anomalies.anomaly_info or anomalies.HasField("dataset_anomaly_info"):
            self._anomalous.append((split, anomalies))
        self._anomalies_dir = os.path.dirname(split_dir.rstrip("/"))
        return anomalies

    def Do(self, input_dict, output_dict, exec_properties):
        self._anomalous: List[Tuple[str, anomalies_pb2.Anomalies]] = []
        result = super().Do(input_dict, output_dict, exec_properties)
        if exec_properties.get(CLASS_COUNTS_KEY):
            self._check_counts(input_dict, json.loads(exec_properties[CLASS_COUNTS_KEY]))
        if self._anomalous:
            raise DataAnomaliesError(
                "Data validation stopped the run before training: the examples do not match the "
                "schema.\n" + describe_anomalies(self._anomalous) +
                f"\nThe full report is in {self._anomalies_dir}. Fix the data, or, if the change is "
                "intended, update the schema (the curated one data.schema names) and run again.")
        return result

    def _check_counts(self, input_dict, settings) -> None:
        """Stops the run, before the schema's verdict, when a split is empty or a class is too rare in it."""
        statistics = artifact_utils.get_single_instance(input_dict[standard_component_specs.STATISTICS_KEY])
        present = set(artifact_utils.decode_split_names(statistics.split_names))
        counts = {split: class_counts.split_counts(stats_artifact_utils.load_statistics(statistics, split).proto(),
                                                   settings["label_feature"])
                  for split in settings["minimums"] if split in present}
        found = class_counts.problems(counts, settings["classes"], settings["minimums"])
        if found:
            raise TooFewExamplesError(
                "Too few examples to train and evaluate: " + "; ".join(found) + ". Per split and class: "
                + "; ".join(f"{split} {c.examples} ({', '.join(f'{k} {v}' for k, v in sorted(c.per_class.items()))})"
                            for split, c in counts.items())
                + ". Add data where it is missing (check the split lists validation_list.txt and testing_list.txt, "
                "and the skipped files in the ExampleGen's ingestion report), or lower "
                "requirements.min_train_examples_per_class / min_eval_examples_per_class.")
