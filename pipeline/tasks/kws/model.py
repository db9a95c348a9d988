"""Keyword-spotting models small enough for a microcontroller.

Both take the flattened front-end feature map and output class probabilities.
``ds_cnn`` follows the depthwise-separable CNN of "Hello Edge" (Zhang et al., 2017)
and MLPerf Tiny's keyword-spotting reference; ``tiny_conv`` is micro_speech's
single-convolution model for the smallest parts.
"""

from __future__ import annotations

from typing import Tuple

import tf_keras as keras

MODEL_BUILDERS = ("ds_cnn", "tiny_conv")


def conv_bn_relu(x, layer):
    x = layer(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    return keras.layers.ReLU()(x)


def build_ds_cnn(feature_shape: Tuple[int, int], num_classes: int, width: int = 64,
                 blocks: int = 4, dropout: float = 0.2) -> keras.Model:
    """A depthwise-separable CNN: one strided convolution, then ``blocks`` DS blocks."""
    frames, channels = feature_shape
    inputs = keras.Input(shape=(frames * channels,), name="features")
    x = keras.layers.Reshape((frames, channels, 1))(inputs)
    x = conv_bn_relu(x, keras.layers.Conv2D(width, (10, 4), strides=(2, 2), padding="same", use_bias=False))
    x = keras.layers.Dropout(dropout)(x)
    for _ in range(blocks):
        x = conv_bn_relu(x, keras.layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False))
        x = conv_bn_relu(x, keras.layers.Conv2D(width, (1, 1), use_bias=False))
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


def build_tiny_conv(feature_shape: Tuple[int, int], num_classes: int, width: int = 8,
                    dropout: float = 0.2) -> keras.Model:
    """micro_speech's tiny_conv: one 10x8 strided convolution and a dense layer."""
    frames, channels = feature_shape
    inputs = keras.Input(shape=(frames * channels,), name="features")
    x = keras.layers.Reshape((frames, channels, 1))(inputs)
    x = keras.layers.Conv2D(width, (10, 8), strides=(2, 2), padding="same", activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tiny_conv")


def build_model(name: str, feature_shape: Tuple[int, int], num_classes: int, width: int) -> keras.Model:
    """Builds the model named in the config's ``training.model``."""
    if name == "ds_cnn":
        return build_ds_cnn(feature_shape, num_classes, width=width)
    if name == "tiny_conv":
        return build_tiny_conv(feature_shape, num_classes, width=width)
    raise ValueError(f"Unknown model '{name}'; choose one of {', '.join(MODEL_BUILDERS)}.")
