"""DataValidationGate: TFX's ExampleValidator that fails the run on any anomaly, or on too few examples."""

import json
from typing import Mapping, Optional, Sequence

from tfx import types
from tfx.components import ExampleValidator
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components.data_validation_gate import executor


class DataValidationGateSpec(standard_component_specs.ExampleValidatorSpec):
    """ExampleValidator's spec plus the class counts to require."""

    PARAMETERS = {
        **standard_component_specs.ExampleValidatorSpec.PARAMETERS,
        executor.CLASS_COUNTS_KEY: ExecutionParameter(type=str, optional=True),
    }


class DataValidationGate(ExampleValidator):
    """ExampleValidator's inputs and outputs; anomalies, an empty split or a class with too few
    examples in a split fail the component.

    The ``anomalies`` output is written exactly as ExampleValidator writes it before
    the component fails, so the report can be read from the pipeline root.
    """

    SPEC_CLASS = DataValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, statistics: types.BaseChannel, schema: types.BaseChannel,
                 classes: Optional[Sequence[str]] = None, label_feature: str = "label",
                 min_examples_per_class: Optional[Mapping[str, int]] = None):
        """Constructs a DataValidationGate.

        Args:
            statistics: StatisticsGen's output.
            schema: the (curated or inferred) schema.
            classes: the classes every split must hold; none: only the schema is checked.
            label_feature: the raw examples' string feature naming the class.
            min_examples_per_class: the fewest examples of each class per split, e.g.
                ``{"train": 10, "eval": 3, "test": 3}``.
        """
        counts = json.dumps({"classes": list(classes), "label_feature": label_feature,
                             "minimums": dict(min_examples_per_class or {})}) if classes else None
        # ExampleValidator's constructor builds its own spec; build ours the same way instead.
        spec = DataValidationGateSpec(
            statistics=statistics, schema=schema, exclude_splits="[]",
            anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
            **({executor.CLASS_COUNTS_KEY: counts} if counts else {}))
        super(ExampleValidator, self).__init__(spec=spec)  # pylint: disable=bad-super-call
