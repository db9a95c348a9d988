"""Motion models small enough for a microcontroller.

Both take the flattened, normalized window (samples x channels) and output class
probabilities. ``conv1d`` is a small 1-D CNN over time (written as Conv2D with a
kernel of height k and width 1, which TFLite Micro runs as CONV_2D without extra
reshapes); ``mlp`` is a dense network for the smallest parts.
"""

from __future__ import annotations

from typing import Tuple

import tf_keras as keras

MODEL_BUILDERS = ("conv1d", "mlp")


def build_conv1d(window_shape: Tuple[int, int], num_classes: int, width: int = 16,
                 dropout: float = 0.1) -> keras.Model:
    """Three strided temporal convolutions, global average pooling, a dense classifier."""
    samples, channels = window_shape
    inputs = keras.Input(shape=(samples * channels,), name="features")
    x = keras.layers.Reshape((samples, 1, channels))(inputs)
    for filters in (width, 2 * width, 2 * width):
        x = keras.layers.Conv2D(filters, (5, 1), strides=(2, 1), padding="same", activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="conv1d")


def build_mlp(window_shape: Tuple[int, int], num_classes: int, width: int = 16, dropout: float = 0.1) -> keras.Model:
    """Two dense layers over the whole window."""
    samples, channels = window_shape
    inputs = keras.Input(shape=(samples * channels,), name="features")
    x = keras.layers.Dense(2 * width, activation="relu")(inputs)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(width, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")


def build_model(name: str, window_shape: Tuple[int, int], num_classes: int, width: int) -> keras.Model:
    """Builds the model named in the config's ``training.model``."""
    if name == "conv1d":
        return build_conv1d(window_shape, num_classes, width=width)
    if name == "mlp":
        return build_mlp(window_shape, num_classes, width=width)
    raise ValueError(f"Unknown motion model '{name}'; choose one of {', '.join(MODEL_BUILDERS)}.")
