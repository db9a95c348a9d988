"""DriftDecision: blesses "retrain" when the fleet's telemetry drifted from the reference's.

Inputs are two StatisticsGen outputs over telemetry (the field span's and the reference's:
the released model's telemetry on its training distribution, computed by the same summary
code). TFDV's ``drift_comparator`` measures L-infinity for the top-class shares and the
top-score histogram, and the Jensen-Shannon divergence for each feature channel's mean and
variance; any measurement above its threshold (the config's ``monitoring`` section) blesses
a retrain.
"""

import json
from typing import Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.drift_decision import drift, executor
from components.types import RetrainDecision


class DriftDecisionSpec(ComponentSpec):
    PARAMETERS = {
        executor.SPLIT_KEY: ExecutionParameter(type=str),
        executor.CLASS_FEATURE_KEY: ExecutionParameter(type=str),
        executor.SCORE_FEATURE_KEY: ExecutionParameter(type=str),
        executor.NUMERIC_FEATURES_KEY: ExecutionParameter(type=str),
        executor.THRESHOLDS_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        executor.STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
        executor.REFERENCE_STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    OUTPUTS = {executor.DECISION_KEY: ChannelParameter(type=RetrainDecision)}


class DriftDecision(base_component.BaseComponent):
    """Field statistics vs reference statistics -> ``decision`` (RetrainDecision: ``retrain`` 1/0, the
    reason, the drifting features, and ``decision.json`` with every measurement)."""

    SPEC_CLASS = DriftDecisionSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, statistics: types.BaseChannel, reference_statistics: types.BaseChannel, split: str,
                 class_feature: str, score_feature: str, numeric_features: Sequence[str],
                 thresholds: drift.Thresholds, examples: Optional[types.BaseChannel] = None):
        """Constructs a DriftDecision.

        Args:
            statistics: StatisticsGen's output over the field span.
            reference_statistics: StatisticsGen's output over the reference telemetry.
            split: the split both hold.
            class_feature: the categorical feature of top-class shares (L-infinity).
            score_feature: the categorical feature of top-score bins (L-infinity).
            numeric_features: the per-channel statistics (Jensen-Shannon divergence).
            thresholds: the distances above which a retrain is blessed, and the fewest records for a decision.
            examples: the field examples (their span is recorded in the decision).
        """
        import dataclasses

        super().__init__(spec=DriftDecisionSpec(
            statistics=statistics, reference_statistics=reference_statistics, examples=examples, split=split,
            class_feature=class_feature, score_feature=score_feature,
            numeric_features=json.dumps(list(numeric_features)),
            thresholds=json.dumps(dataclasses.asdict(thresholds)),
            decision=channel.Channel(type=RetrainDecision)))
