"""Transform's ``preprocessing_fn`` for motion windows: per-channel normalization.

Each channel is centred and scaled by its mean and standard deviation over the whole
training split (TFT analyzers), so the statistics are constants in the transform graph;
``normalization.py`` reads them back for the device. Outputs ``features`` (the window,
samples x channels, flattened) and ``label_id`` (by comparison with the fixed class
list: no vocabulary, no lookup table).
"""

from __future__ import annotations

from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft

from pipeline.tasks.kws.preprocessing import label_to_id

FEATURES_KEY = "features"
LABEL_KEY = "label_id"
RAW_LABEL_KEY = "label"
LABELS_CONFIG_KEY = "labels"
CHANNELS_CONFIG_KEY = "channels"
WINDOW_CONFIG_KEY = "window_samples"
EPSILON = 1e-6  # keeps a constant channel's scale finite; the device header carries the resulting scale


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """Raw windows to model inputs.

    Args:
        inputs: raw features; one float feature per channel (``window_samples`` values) and ``label``.
        custom_config: ``labels`` (class order), ``channels`` (model order) and ``window_samples``.
    """
    window = int(custom_config[WINDOW_CONFIG_KEY])
    normalized = []
    for channel in custom_config[CHANNELS_CONFIG_KEY]:
        values = tf.reshape(tf.cast(inputs[channel], tf.float32), [-1, window])
        mean = tft.mean(values)
        scale = tf.math.rsqrt(tft.var(values) + EPSILON)
        normalized.append((values - mean) * scale)
    stacked = tf.stack(normalized, axis=-1)  # [batch, window, channels]
    return {
        FEATURES_KEY: tf.reshape(stacked, [-1, window * len(normalized)]),
        LABEL_KEY: label_to_id(inputs[RAW_LABEL_KEY], custom_config[LABELS_CONFIG_KEY]),
    }
