"""StreamingEvaluator: how the int8 model behaves on continuous audio, as the device runs it."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Sequence, Union

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.streaming_evaluator import executor
from components.types import DeviceReport, ModelBlessing, StreamingEvaluation, TFLiteModel


class StreamingEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        executor.LABELS_KEY: ExecutionParameter(type=str),
        executor.KEYWORDS_KEY: ExecutionParameter(type=str),
        executor.SOURCE_MODULE_KEY: ExecutionParameter(type=str),
        executor.SOURCE_SETTINGS_KEY: ExecutionParameter(type=str),
        executor.AVERAGE_WINDOW_MS_KEY: ExecutionParameter(type=int),
        executor.SUPPRESSION_MS_KEY: ExecutionParameter(type=int),
        executor.MINIMUM_COUNT_KEY: ExecutionParameter(type=int),
        executor.INFERENCE_STRIDE_MS_KEY: ExecutionParameter(type=int),
        executor.TOLERANCE_MS_KEY: ExecutionParameter(type=int),
        executor.MAX_FALSE_ACCEPTS_PER_HOUR_KEY: ExecutionParameter(type=float),
        executor.MAX_FALSE_REJECT_RATE_KEY: ExecutionParameter(type=float),
        executor.WORKERS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        executor.QUANTIZED_MODEL_KEY: ChannelParameter(type=TFLiteModel),
        executor.DEVICE_REPORT_KEY: ChannelParameter(type=DeviceReport, optional=True),
    }
    OUTPUTS = {
        executor.EVALUATION_KEY: ChannelParameter(type=StreamingEvaluation),
        executor.BLESSING_KEY: ChannelParameter(type=ModelBlessing),
    }


class StreamingEvaluator(base_component.BaseComponent):
    """Runs the quantized model on long streams the way a device does and tunes its detection threshold.

    The task family's stream source (``source_module``, see ``source.py``) gives the streams
    (with ground truth) and the front end; every ``inference_stride_ms`` (0: the target board's
    estimated time per inference from ``device_report``, rounded up to whole feature slices) the
    int8 model runs on TFLite Micro over the latest window, and micro_speech's RecognizeCommands
    turns its scores into commands. Over every detection threshold it measures false accepts per
    hour and the false-reject rate (the DET curve), picks the threshold with the lowest FRR within
    ``max_false_accepts_per_hour``, and blesses the model when that FRR is within
    ``max_false_reject_rate``. Outputs ``evaluation`` (report, ``postprocessing.h``, scores, ground
    truth) and ``blessing`` (with the reason, naming the failed requirement and by how much).
    """

    SPEC_CLASS = StreamingEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, quantized_model: types.BaseChannel, labels: Sequence[str], keywords: Sequence[str],
                 source_module: str, source_settings: Dict[str, Any],
                 max_false_accepts_per_hour: Union[float, Any], max_false_reject_rate: Union[float, Any],
                 device_report: Optional[types.BaseChannel] = None, average_window_ms: int = 1000,
                 suppression_ms: int = 1500, minimum_count: int = 3, inference_stride_ms: int = 0,
                 tolerance_ms: int = 1000, workers: int = 0):
        """Constructs a StreamingEvaluator.

        Args:
            quantized_model: TFLiteQuantizer's ``quantized_model`` (int8 in and out).
            labels: the model's classes in output order (class 0 is silence).
            keywords: the classes that are commands.
            source_module: the task family's stream source (import path).
            source_settings: its settings (JSON-able), with the front end's ``frames`` timing.
            max_false_accepts_per_hour, max_false_reject_rate: the requirements (floats or RuntimeParameters).
            device_report: McuSizeGate's ``report``, whose ``latency_ms`` sets the inference stride when
                ``inference_stride_ms`` is 0.
            average_window_ms, suppression_ms, minimum_count: RecognizeCommands' settings.
            inference_stride_ms: how often the device runs the model; 0: from the target's latency.
            tolerance_ms: how late after a keyword's end a detection still finds it.
            workers: processes that load streams and run TFLite Micro (0: one per core).
        """
        super().__init__(spec=StreamingEvaluatorSpec(
            quantized_model=quantized_model, device_report=device_report, labels=json.dumps(list(labels)),
            keywords=json.dumps(list(keywords)), source_module=source_module,
            source_settings=json.dumps(source_settings, sort_keys=True), average_window_ms=int(average_window_ms),
            suppression_ms=int(suppression_ms), minimum_count=int(minimum_count),
            inference_stride_ms=int(inference_stride_ms or 0), tolerance_ms=int(tolerance_ms),
            max_false_accepts_per_hour=max_false_accepts_per_hour, max_false_reject_rate=max_false_reject_rate,
            workers=int(workers), evaluation=channel.Channel(type=StreamingEvaluation),
            blessing=channel.Channel(type=ModelBlessing)))
