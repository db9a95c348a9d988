"""An ExampleValidator executor that stops the run when the data has anomalies.

TFX's ExampleValidator records anomalies and lets the pipeline go on. For a model
that will be flashed to devices, training on data that breaks the curated schema
is worse than not training, so this executor does TFX's validation unchanged and
then fails the component with a readable list of what is wrong.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Tuple

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.example_validator import labels
from tfx.components.util import value_utils

from components.errors import PipelineInputError


class DataAnomaliesError(PipelineInputError):
    """The examples do not match the curated schema."""


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
        if self._anomalous:
            raise DataAnomaliesError(
                "Data validation stopped the run before training: the examples do not match the "
                "curated schema.\n" + describe_anomalies(self._anomalous) +
                f"\nThe full report is in {self._anomalies_dir}. Fix the data, or, if the change is "
                "intended, update the curated schema the config names (data.schema) and run again.")
        return result
