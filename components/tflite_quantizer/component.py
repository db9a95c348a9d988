"""TFLiteQuantizer: the Trainer's model to a TFLite Micro-ready int8 model, checked for fidelity."""

from __future__ import annotations

import json
from typing import Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.tflite_quantizer import executor
from components.types import ModelBlessing, TFLiteModel


class TFLiteQuantizerSpec(ComponentSpec):
    """Inputs, outputs and parameters of TFLiteQuantizer (keys in executor.py)."""

    PARAMETERS = {
        executor.MODE_KEY: ExecutionParameter(type=str),
        executor.CALIBRATION_EXAMPLES_KEY: ExecutionParameter(type=int),
        executor.MAX_ACCURACY_DROP_KEY: ExecutionParameter(type=float),
        executor.LABELS_KEY: ExecutionParameter(type=str),
        executor.SIGNATURE_KEY: ExecutionParameter(type=str),
        executor.SEED_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {
        executor.QUANTIZED_MODEL_KEY: ChannelParameter(type=TFLiteModel),
        executor.BLESSING_KEY: ChannelParameter(type=ModelBlessing),
    }


class TFLiteQuantizer(base_component.BaseComponent):
    """Converts the Trainer's feature-tensor signature to TFLite and checks the result.

    Outputs ``quantized_model`` (a ``components.TFLiteModel``: model.tflite,
    model_float.tflite, model_data.cc/.h, micro_op_resolver.h,
    quantization_report.json) and ``blessing``, positive only when the quantized
    model loads in TFLite Micro, has not collapsed onto one class, and loses at most
    ``max_accuracy_drop`` accuracy against the float model on the eval split.
    """

    SPEC_CLASS = TFLiteQuantizerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel,
                 transform_graph: types.BaseChannel, labels: Sequence[str], *, mode: str = "int8",
                 calibration_examples: int = 300, max_accuracy_drop: float = 0.01,
                 signature: str = "serving_features", seed: int = 0,
                 quantized_model: Optional[types.BaseChannel] = None):
        """Constructs a TFLiteQuantizer.

        Args:
            model: the Trainer's model, with a feature-tensor signature.
            examples: Transform's transformed examples (train for calibration, eval for fidelity).
            transform_graph: Transform's graph, for the transformed feature spec.
            labels: class names in index order.
            mode: ``int8`` (full-integer, int8 input and output), ``float16`` or ``dynamic_range``.
            calibration_examples: how many train examples calibrate int8 ranges,
                drawn stratified by class with ``seed``.
            max_accuracy_drop: the largest accuracy loss (a fraction: 0.01 is one point) that is blessed.
            signature: the SavedModel signature that takes the feature map.
            seed: makes the calibration sample repeatable.
        """
        spec = TFLiteQuantizerSpec(
            model=model, examples=examples, transform_graph=transform_graph,
            mode=mode, calibration_examples=calibration_examples, max_accuracy_drop=max_accuracy_drop,
            labels=json.dumps(list(labels)), signature=signature, seed=seed,
            quantized_model=quantized_model or channel.Channel(type=TFLiteModel),
            blessing=channel.Channel(type=ModelBlessing))
        super().__init__(spec=spec)
