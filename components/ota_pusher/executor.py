"""OtaPusher executor: TFX's Pusher, pushing a signed release to the OTA registry.

Subclasses TFX's Pusher executor to reuse its blessing check (``CheckBlessing``) and its
``pushed`` / ``pushed_destination`` / ``pushed_version`` properties; only the push differs.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

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
PUSHED_MODEL_KEY = standard_component_specs.PUSHED_MODEL_KEY
REGISTRY_KEY = "registry"
REPOSITORY_KEY = "repository"
SIGNING_KEY_FILE_KEY = "signing_key_file"
ALLOW_UNSIGNED_KEY = "allow_unsigned"
MODEL_CARD_KEY = "model_card"  # model_card.CardText as JSON: the task's words for the release's card
CHANNEL_KEY = "channel"
FRONTEND_HASH_KEY = "frontend_hash"
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
        files = publish.release_files(quantized.uri, report.uri)
        blessing_ids = {key: artifact_utils.get_single_instance(input_dict[key]).id for key in BLESSING_KEYS}
        lineage = publish.lineage(quantized.id, report.id, blessing_ids[MODEL_BLESSING_KEY],
                                  blessing_ids[QUANTIZATION_BLESSING_KEY], blessing_ids[DEVICE_BLESSING_KEY])
        run_id = (self._context.pipeline_run_id if self._context else None) or ""
        annotations = publish.release_annotations(
            files, exec_properties[FRONTEND_HASH_KEY], exec_properties[PIPELINE_NAME_KEY], run_id, lineage)
        if exec_properties.get(MODEL_CARD_KEY):
            publish.add_model_card(files, model_card.CardText.from_json(exec_properties[MODEL_CARD_KEY]), annotations)
        add_streaming_evaluation(files, annotations, input_dict)
        registry, repository = exec_properties[REGISTRY_KEY], exec_properties[REPOSITORY_KEY]
        store = publish.open_store(registry, repository)
        allow_unsigned = bool(exec_properties.get(ALLOW_UNSIGNED_KEY))
        key = publish.load_signing_key(exec_properties.get(SIGNING_KEY_FILE_KEY) or None)
        release = publish.publish(store, files, annotations, repository, key, allow_unsigned,
                                  exec_properties[CHANNEL_KEY], actor=f"pipeline {exec_properties[PIPELINE_NAME_KEY]}")
        destination = f"{store.root}:{release.version}"
        tf.io.gfile.makedirs(model_push.uri)
        with tf.io.gfile.GFile(os.path.join(model_push.uri, "release.json"), "w") as f:
            json.dump({"destination": destination, "version": release.version, "digest": release.digest,
                       "annotations": release.annotations}, f, indent=2)
        model_push.set_string_custom_property("digest", release.digest)
        model_push.set_int_custom_property("signed", int(key is not None))
        self._MarkPushed(model_push, pushed_destination=destination, pushed_version=release.version)
        logging.info("OtaPusher: pushed %s (%s), signed: %s, on %s for %s.", destination, release.digest,
                     key is not None, exec_properties[CHANNEL_KEY], ", ".join(publish.targets_of(release.annotations)))


def add_streaming_evaluation(files: Dict[str, bytes], annotations: Dict[str, str],
                             input_dict: Dict[str, List[Any]]) -> None:
    """The StreamingEvaluator's part of the release, when the pipeline has one: ``postprocessing.h``
    and ``streaming_report.json`` beside the firmware sources, the detection settings and their
    measured figures as annotations, and the streaming section of the model card."""
    if not input_dict.get(STREAMING_EVALUATION_KEY):
        return
    from components.streaming_evaluator import release as streaming_release

    evaluation = artifact_utils.get_single_instance(input_dict[STREAMING_EVALUATION_KEY])
    blessing = artifact_utils.get_single_instance(input_dict[STREAMING_BLESSING_KEY])
    streaming_release.add_to_release(files, annotations, evaluation.uri,
                                     {"streaming_evaluation": evaluation.id, "streaming_blessing": blessing.id})
