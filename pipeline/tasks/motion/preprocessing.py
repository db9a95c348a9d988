"""Transform's ``preprocessing_fn`` for motion windows: per-channel normalization, optionally a spectrum.

Each channel is centred and scaled by its mean and standard deviation over the whole
training split (TFT analyzers), so the statistics are constants of the transform graph.
The model sees either the normalized window (``features: time``) or each normalized
channel's FFT magnitude, bins 1..``spectral_bins`` divided by the window length
(``features: spectrum``). Outputs ``features`` (flattened, rows x channels),
``label_id`` (by comparison with the fixed class list: no vocabulary, no lookup
table), and the normalization constants themselves (``normalization_mean`` and
``normalization_scale``, the same on every example) so that ``normalization.py`` exports
for firmware exactly what the graph applies.
"""

from __future__ import annotations

from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft

from pipeline.tasks.common.preprocessing import LABEL_KEY, RAW_LABEL_KEY, label_to_id

FEATURES_KEY = "features"
MEAN_KEY = "normalization_mean"
SCALE_KEY = "normalization_scale"
LABELS_CONFIG_KEY = "labels"
CHANNELS_CONFIG_KEY = "channels"
WINDOW_CONFIG_KEY = "window_samples"
FEATURE_MODE_CONFIG_KEY = "features"
BINS_CONFIG_KEY = "spectral_bins"
EPSILON = 1e-6  # keeps a constant channel's scale finite; the device header carries the resulting scale


def spectrum(normalized: tf.Tensor, bins: int) -> tf.Tensor:
    """|FFT| of each row, bins 1..``bins``, divided by the row length (what firmware computes too)."""
    window = normalized.shape[-1]
    return tf.abs(tf.signal.rfft(normalized))[:, 1:bins + 1] / float(window)


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """Raw windows to model inputs.

    Args:
        inputs: raw features; one float feature per channel (``window_samples`` values) and ``label``.
        custom_config: ``labels`` (class order), ``channels`` (model order), ``window_samples``,
            ``features`` (``time`` or ``spectrum``) and ``spectral_bins``.
    """
    window = int(custom_config[WINDOW_CONFIG_KEY])
    channels = custom_config[CHANNELS_CONFIG_KEY]
    spectral = custom_config[FEATURE_MODE_CONFIG_KEY] == "spectrum"
    rows_per_channel = int(custom_config[BINS_CONFIG_KEY]) if spectral else window
    rows, means, scales = [], [], []
    for channel in channels:
        values = tf.reshape(tf.cast(inputs[channel], tf.float32), [-1, window])
        mean = tft.mean(values)
        scale = tf.math.rsqrt(tft.var(values) + EPSILON)
        normalized = (values - mean) * scale
        if spectral:
            normalized = spectrum(normalized, rows_per_channel)
        rows.append(normalized)
        means.append(mean)
        scales.append(scale)
    stacked = tf.stack(rows, axis=-1)  # [batch, samples or bins, channels]
    batch = tf.shape(stacked)[0]

    def per_example(constants):
        return tf.tile(tf.reshape(tf.stack(constants), [1, len(channels)]), [batch, 1])

    return {
        FEATURES_KEY: tf.reshape(stacked, [-1, rows_per_channel * len(channels)]),
        LABEL_KEY: label_to_id(inputs[RAW_LABEL_KEY], custom_config[LABELS_CONFIG_KEY]),
        MEAN_KEY: per_example(means),
        SCALE_KEY: per_example(scales),
    }
