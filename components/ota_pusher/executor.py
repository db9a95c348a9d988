"""OtaPusher executor: TFX's Pusher, pushing a signed release to the OTA registry.

Subclasses TFX's Pusher executor to reuse its blessing check (``CheckBlessing``) and its
``pushed`` / ``pushed_destination`` / ``pushed_version`` properties; the release itself is
``components.ota.publish.release_run``, the same call ``tinyml-tfx push`` makes.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Tuple

import tensorflow as tf
from absl import logging
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.types import artifact_utils, standard_component_specs

from components.ota import model_card, publish

QUANTIZED_MODEL_KEY = "quantized_model"
MODEL_BLESSING_KEY = standard_component_specs.MODEL_BLESSING_KEY   # the Evaluator's
QUANTIZATION_BLESSING_KEY = "quantization_blessing"
DEVICE_BLESSING_KEY = "device_blessing"
DEVICE_REPORT_KEY = "device_report"
TEST_EVALUATION_KEY = "test_evaluation"
PUSHED_MODEL_KEY = standard_component_specs.PUSHED_MODEL_KEY
REGISTRY_KEY = "registry"
REPOSITORY_KEY = "repository"
SIGNING_KEY_FILE_KEY = "signing_key_file"
ALLOW_UNSIGNED_KEY = "allow_unsigned"
INSECURE_KEY = "insecure"
MODEL_CARD_KEY = "model_card"  # model_card.CardText as JSON: the task's words for the release's card
CHANNEL_KEY = "channel"
INPUT_PROCESSING_KEY = "input_processing"  # publish.InputProcessing as JSON
PIPELINE_NAME_KEY = "pipeline_name"
BLESSING_KEYS = (MODEL_BLESSING_KEY, QUANTIZATION_BLESSING_KEY, DEVICE_BLESSING_KEY)
STREAMING_EVALUATION_KEY = "streaming_evaluation"  # optional: the StreamingEvaluator's outputs
STREAMING_BLESSING_KEY = "streaming_blessing"


class Executor(tfx_pusher_executor.Executor):
    """Pushes the quantized model as a signed OTA release when every blessing is positive."""

    def CheckBlessing(self, input_dict: Dict[str, List[Any]]) -> bool:
        """TFX's check, applied to each blessing: the Evaluator's, the quantizer's and the size gate's."""
        for key in BLESSING_KEYS + ((STREAMING_BLESSING_KEY,) if input_dict.get(STREAMING_BLESSING_KEY) else ()):
            if not super().CheckBlessing({MODEL_BLESSING_KEY: input_dict[key]}):
                logging.info("OtaPusher: %s is not blessed; nothing is pushed.", key)
                return False
        return True

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        quantized = artifact_utils.get_single_instance(input_dict[QUANTIZED_MODEL_KEY])
        report = artifact_utils.get_single_instance(input_dict[DEVICE_REPORT_KEY])
        blessing_ids = {key: artifact_utils.get_single_instance(input_dict[key]).id for key in BLESSING_KEYS}
        pipeline_name = exec_properties[PIPELINE_NAME_KEY]
        run = publish.RunArtifacts(
            quantized_dir=quantized.uri, device_report_dir=report.uri,
            input_processing=publish.InputProcessing.from_json(exec_properties[INPUT_PROCESSING_KEY]),
            pipeline_name=pipeline_name, run_id=(self._context.pipeline_run_id if self._context else None) or "",
            lineage=publish.lineage(quantized.id, report.id, blessing_ids[MODEL_BLESSING_KEY],
                                    blessing_ids[QUANTIZATION_BLESSING_KEY], blessing_ids[DEVICE_BLESSING_KEY]),
            card=(model_card.CardText.from_json(exec_properties[MODEL_CARD_KEY])
                  if exec_properties.get(MODEL_CARD_KEY) else None),
            test_evaluation_dir=(artifact_utils.get_single_instance(input_dict[TEST_EVALUATION_KEY]).uri
                                 if input_dict.get(TEST_EVALUATION_KEY) else None),
            additions=streaming_additions(input_dict))
        destination = publish.Destination(
            registry=exec_properties[REGISTRY_KEY], repository=exec_properties[REPOSITORY_KEY],
            signing_key_file=exec_properties.get(SIGNING_KEY_FILE_KEY) or None,
            allow_unsigned=bool(exec_properties.get(ALLOW_UNSIGNED_KEY)), channel=exec_properties[CHANNEL_KEY],
            insecure=bool(exec_properties.get(INSECURE_KEY)))
        published = publish.release_run(run, destination, actor=f"pipeline {pipeline_name}")
        release = published.release
        tf.io.gfile.makedirs(model_push.uri)
        with tf.io.gfile.GFile(os.path.join(model_push.uri, "release.json"), "w") as f:
            json.dump({"destination": published.destination, "version": release.version, "digest": release.digest,
                       "annotations": release.annotations}, f, indent=2)
        model_push.set_string_custom_property("digest", release.digest)
        model_push.set_int_custom_property("signed", int(published.signed))
        self._MarkPushed(model_push, pushed_destination=published.destination, pushed_version=release.version)
        logging.info("OtaPusher: pushed %s (%s), signed: %s, on %s for %s.", published.destination, release.digest,
                     published.signed, destination.channel, ", ".join(published.targets))


def streaming_additions(input_dict: Dict[str, List[Any]]) -> Tuple[publish.ReleaseAddition, ...]:
    """The StreamingEvaluator's part of the release, when the pipeline has one: ``postprocessing.h``
    and ``streaming_report.json`` beside the firmware sources, the detection settings and their
    measured figures as annotations, and the streaming section of the model card."""
    if not input_dict.get(STREAMING_EVALUATION_KEY):
        return ()
    from components.streaming_evaluator import release as streaming_release

    evaluation = artifact_utils.get_single_instance(input_dict[STREAMING_EVALUATION_KEY])
    blessing = artifact_utils.get_single_instance(input_dict[STREAMING_BLESSING_KEY])
    return (streaming_release.addition(evaluation.uri, evaluation.id, blessing.id),)
