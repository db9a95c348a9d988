"""TestSetEvaluator: the blessed model measured once on the held-out test split, after every gate.

Every decision (the Evaluator's blessing, the quantizer's fidelity, the search) reads the
eval split; the test split is what the model has never been judged on, so its figure is the
one to quote. The component sits inside the pusher's ``tfx.dsl.Cond``: it runs only for a
model that passed every gate, and nothing downstream decides on its output.
"""

import json
from typing import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.test_set_evaluator import executor
from components.types import TestEvaluation, TFLiteModel


class TestSetEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        executor.LABELS_KEY: ExecutionParameter(type=str),
        executor.SIGNATURE_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.QUANTIZED_MODEL_KEY: ChannelParameter(type=TFLiteModel),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {executor.EVALUATION_KEY: ChannelParameter(type=TestEvaluation)}


class TestSetEvaluator(base_component.BaseComponent):
    """Float accuracy (the Trainer's model) and int8 accuracy on TFLite Micro (the quantizer's flatbuffer)
    on the test split, per class, with confusion matrices: ``evaluation`` (``test_report.json``)."""

    SPEC_CLASS = TestSetEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, quantized_model: types.BaseChannel, examples: types.BaseChannel,
                 transform_graph: types.BaseChannel, labels: Sequence[str], signature: str = "serving_features"):
        """Constructs a TestSetEvaluator.

        Args:
            model: the Trainer's model (its ``signature`` takes the model input).
            quantized_model: TFLiteQuantizer's flatbuffer, run on TFLite Micro.
            examples: Transform's transformed examples (their ``test`` split).
            transform_graph: Transform's graph, for the transformed feature spec.
            labels: class names in index order.
            signature: the SavedModel signature that takes the model input.
        """
        super().__init__(spec=TestSetEvaluatorSpec(
            model=model, quantized_model=quantized_model, examples=examples, transform_graph=transform_graph,
            labels=json.dumps(list(labels)), signature=signature,
            evaluation=channel.Channel(type=TestEvaluation)))
