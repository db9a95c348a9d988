"""Transform's ``preprocessing_fn`` for keyword spotting.

Outputs ``features`` (the front end's frames x channels map, flattened) and
``label_id``. The features are computed with the front end's state warmed up on the
clip's own background (``features.warm_clip_features``), as the device's continuously
running front end has it when a word arrives; training, evaluation, quantizer
calibration and the serving signature all run this graph. The label maps to its index by comparison with the fixed class list
from the config: no vocabulary, no lookup table, nothing in the graph that a
device converter would have to carry.
"""

from __future__ import annotations

from typing import Any, Dict

import tensorflow as tf

from pipeline.tasks.common.preprocessing import label_to_id
from pipeline.tasks.kws import features

LABELS_CONFIG_KEY = "labels"
FRONTEND_CONFIG_KEY = "frontend"
CLIP_SAMPLES_CONFIG_KEY = "clip_samples"
WARMUP_MS_CONFIG_KEY = "warmup_ms"


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """Raw examples to model inputs.

    Args:
        inputs: raw features; ``audio`` and ``label`` are used.
        custom_config: ``labels`` (class order), ``frontend`` (front-end parameters),
            ``clip_samples`` and ``warmup_ms`` (the front end first runs over this much of the clip's
            own background, as the device's has been running before a word; 0 or absent: a reset state).
    """
    params = custom_config[FRONTEND_CONFIG_KEY]
    clip_samples = int(custom_config[CLIP_SAMPLES_CONFIG_KEY])
    feature_map = features.batch_features(inputs[features.RAW_AUDIO_KEY], params, clip_samples,
                                          warmup_ms=int(custom_config.get(WARMUP_MS_CONFIG_KEY) or 0))
    frames, channels = features.feature_shape(params, clip_samples)
    return {
        features.FEATURES_KEY: tf.reshape(feature_map, [-1, frames * channels]),
        features.LABEL_KEY: label_to_id(inputs[features.RAW_LABEL_KEY], custom_config[LABELS_CONFIG_KEY]),
    }
