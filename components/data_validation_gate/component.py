"""DataValidationGate: TFX's ExampleValidator that fails the run on any anomaly."""

from tfx.components import ExampleValidator
from tfx.dsl.components.base import executor_spec

from components.data_validation_gate import executor


class DataValidationGate(ExampleValidator):
    """Same inputs, outputs and parameters as ExampleValidator; anomalies fail the component.

    The ``anomalies`` output is written exactly as ExampleValidator writes it before
    the component fails, so the report can be read from the pipeline root.
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
