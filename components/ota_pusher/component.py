"""OtaPusher: TFX's Pusher for microcontrollers, pushing signed releases to an OCI registry."""

from __future__ import annotations

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.ota import model_card, publish
from components.ota_pusher import executor
from components.types import DeviceReport, ModelBlessing, StreamingEvaluation, TestEvaluation, TFLiteModel


class OtaPusherSpec(ComponentSpec):
    PARAMETERS = {
        executor.REGISTRY_KEY: ExecutionParameter(type=str),
        executor.REPOSITORY_KEY: ExecutionParameter(type=str),
        executor.SIGNING_KEY_FILE_KEY: ExecutionParameter(type=str, optional=True),
        executor.ALLOW_UNSIGNED_KEY: ExecutionParameter(type=int),
        executor.CHANNEL_KEY: ExecutionParameter(type=str),
        executor.INPUT_PROCESSING_KEY: ExecutionParameter(type=str),
        executor.INSECURE_KEY: ExecutionParameter(type=int),
        executor.PIPELINE_NAME_KEY: ExecutionParameter(type=str),
        executor.MODEL_CARD_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.QUANTIZED_MODEL_KEY: ChannelParameter(type=TFLiteModel),
        executor.MODEL_BLESSING_KEY: ChannelParameter(type=ModelBlessing),
        executor.QUANTIZATION_BLESSING_KEY: ChannelParameter(type=ModelBlessing),
        executor.DEVICE_BLESSING_KEY: ChannelParameter(type=ModelBlessing),
        executor.DEVICE_REPORT_KEY: ChannelParameter(type=DeviceReport),
        executor.TEST_EVALUATION_KEY: ChannelParameter(type=TestEvaluation, optional=True),
        executor.STREAMING_EVALUATION_KEY: ChannelParameter(type=StreamingEvaluation, optional=True),
        executor.STREAMING_BLESSING_KEY: ChannelParameter(type=ModelBlessing, optional=True),
    }
    OUTPUTS = {executor.PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel)}


class OtaPusher(base_component.BaseComponent):
    """Pushes the quantized model, its firmware sources and reports as a signed OTA release.

    Pushes only when the Evaluator's, the quantizer's and the MCU size gate's blessings are
    all positive (TFX's Pusher check on each); puts the release on ``channel`` for every
    device class the gate passed. Output ``pushed_model`` carries TFX's ``pushed``,
    ``pushed_destination`` (``<registry>/<repository>:<version>``) and ``pushed_version``.
    """

    SPEC_CLASS = OtaPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, quantized_model: types.BaseChannel, model_blessing: types.BaseChannel,
                 quantization_blessing: types.BaseChannel, device_blessing: types.BaseChannel,
                 device_report: types.BaseChannel, registry: str, repository: str,
                 input_processing: publish.InputProcessing, pipeline_name: str,
                 signing_key_file: Optional[str] = None, allow_unsigned: bool = False,
                 channel_name: str = "canary", card: Optional[model_card.CardText] = None, insecure: bool = False,
                 test_evaluation: Optional[types.BaseChannel] = None,
                 streaming_evaluation: Optional[types.BaseChannel] = None,
                 streaming_blessing: Optional[types.BaseChannel] = None):
        """Constructs an OtaPusher.

        Args:
            quantized_model: TFLiteQuantizer's ``quantized_model``.
            model_blessing: the Evaluator's ``blessing``.
            quantization_blessing: TFLiteQuantizer's ``blessing``.
            device_blessing, device_report: McuSizeGate's ``blessing`` and ``report``.
            registry: an OCI layout directory or an ``http(s)://`` registry URL.
            repository: the repository in the registry.
            input_processing: the annotation that records how firmware must prepare the model's input
                (the task decides: an audio front-end hash, or the hash of a file the run ships).
            pipeline_name: recorded in the release's annotations.
            signing_key_file: PEM private key, encrypted or not (or ``TINYML_TFX_SIGNING_KEY`` at push
                time; the passphrase from ``COSIGN_PASSWORD``/``COSIGN_PASSWORD_FILE``).
            allow_unsigned: push without a signature when no key is given.
            channel_name: the channel the release goes on for each gated device class.
            card: the task's words for the model card the release carries (none without it).
            insecure: allow registry credentials over plain ``http://`` off loopback.
            test_evaluation: the TestSetEvaluator's ``evaluation``: the test split's figures travel in the
                release (``test_report.json``, annotations, the model card).
            streaming_evaluation, streaming_blessing: the StreamingEvaluator's outputs, when the task
                has one: its blessing is checked too, and its postprocessing.h, report, settings and
                figures go into the release.
        """
        super().__init__(spec=OtaPusherSpec(
            quantized_model=quantized_model, model_blessing=model_blessing,
            quantization_blessing=quantization_blessing, device_blessing=device_blessing,
            device_report=device_report, registry=registry, repository=repository,
            signing_key_file=signing_key_file, allow_unsigned=int(allow_unsigned), channel=channel_name,
            input_processing=input_processing.to_json(), insecure=int(insecure), pipeline_name=pipeline_name,
            model_card=card.to_json() if card else None, test_evaluation=test_evaluation,
            streaming_evaluation=streaming_evaluation, streaming_blessing=streaming_blessing,
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel)))
