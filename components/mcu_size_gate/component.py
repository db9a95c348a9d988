"""McuSizeGate: may this quantized model ship to its target board?"""

from __future__ import annotations

import json
from typing import Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.mcu_size_gate import executor
from components.types import DeviceReport, ModelBlessing, TFLiteModel


class McuSizeGateSpec(ComponentSpec):
    PARAMETERS = {
        executor.TARGET_KEY: ExecutionParameter(type=str),
        executor.EXTRA_TARGETS_KEY: ExecutionParameter(type=str),
        executor.BOARDS_DIRS_KEY: ExecutionParameter(type=str),
        executor.MAX_LATENCY_MS_KEY: ExecutionParameter(type=float, optional=True),
    }
    INPUTS = {executor.QUANTIZED_MODEL_KEY: ChannelParameter(type=TFLiteModel)}
    OUTPUTS = {
        executor.BLESSING_KEY: ChannelParameter(type=ModelBlessing),
        executor.REPORT_KEY: ChannelParameter(type=DeviceReport),
    }


class McuSizeGate(base_component.BaseComponent):
    """Measures the quantized model on TFLite Micro (arena, ops, MACs, code flash), estimates
    its latency, and checks it against boards.

    Outputs ``blessing`` (``blessed`` 1 only when the model fits the primary target and,
    when ``max_latency_ms`` is set, is fast enough on it,
    with one readable reason per failed budget) and ``report``
    (``device_report.json`` / ``.html``: every target's budgets).
    """

    SPEC_CLASS = McuSizeGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, quantized_model: types.BaseChannel, target: str, extra_targets: Sequence[str] = (),
                 boards_dirs: Sequence[str] = (), max_latency_ms: Optional[float] = None):
        """Constructs an McuSizeGate.

        Args:
            quantized_model: TFLiteQuantizer's ``quantized_model``.
            target: the primary board (a catalogue name); the blessing is about it.
            extra_targets: more boards to report on.
            boards_dirs: folders of extra board profiles besides the shipped catalogue.
            max_latency_ms: longest estimated time per inference on ``target``; None: reported only.
        """
        super().__init__(spec=McuSizeGateSpec(
            quantized_model=quantized_model, target=target, extra_targets=json.dumps(list(extra_targets)),
            boards_dirs=json.dumps(list(boards_dirs)),
            max_latency_ms=None if max_latency_ms is None else float(max_latency_ms),
            blessing=channel.Channel(type=ModelBlessing), report=channel.Channel(type=DeviceReport)))
