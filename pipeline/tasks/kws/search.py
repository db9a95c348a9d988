"""The keyword-spotting search space: DS-CNN and MicroNet-like inverted-residual models.

``build_model(hp, settings)`` defines the hyperparameters (with KerasTuner's
``HyperParameters``) and builds the model they describe; the search and the Trainer
call the same function, so the model the Trainer trains is the one the search judged.
Every default value reproduces the pre-search default model (DS-CNN, width 64, four
blocks, a 10x4 first convolution with stride 2x2), so an empty ``HyperParameters`` gives it.

Channel counts are multiples of 8: CMSIS-NN's int8 kernels run markedly faster on them.
The front end's channel count is not searched: it is Transform's output, which every
candidate shares (see the README's search section).
"""

from __future__ import annotations

from typing import Any, Mapping, Tuple

import tf_keras as keras

from pipeline.tasks.kws.model import conv_bn_relu

# (time x frequency); the wider kernels cover what the wider strides step over.
FIRST_KERNELS = {"10x4": (10, 4), "10x8": (10, 8), "5x8": (5, 8), "5x5": (5, 5), "3x3": (3, 3)}
FIRST_STRIDES = {"2x2": (2, 2), "2x4": (2, 4), "2x8": (2, 8), "4x4": (4, 4)}


def _pair(name: str, table) -> Tuple[int, int]:
    return table[name]


def _inverted_residual(x, width: int, expansion: int):
    """MobileNetV2's block (as in MicroNets): expand 1x1, depthwise 3x3, project 1x1, residual when shapes match."""
    inputs = x
    x = conv_bn_relu(x, keras.layers.Conv2D(width * expansion, (1, 1), use_bias=False))
    x = conv_bn_relu(x, keras.layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False))
    x = keras.layers.Conv2D(width, (1, 1), use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    if inputs.shape[-1] == width:
        x = keras.layers.Add()([inputs, x])
    return x


def build_model(hp, settings: Mapping[str, Any]) -> keras.Model:
    """The candidate ``hp`` describes, compiled, for the feature map and classes in ``settings``.

    Args:
        hp: a ``keras_tuner.HyperParameters``; values it lacks take their defaults.
        settings: ``input_shape`` (frames, channels), ``classes`` (count) and ``training``.
    """
    frames, channels = settings["input_shape"]
    first_filters = hp.Choice("first_filters", [16, 24, 32, 48, 64], default=64)
    first_kernel = _pair(hp.Choice("first_kernel", list(FIRST_KERNELS), default="10x4"), FIRST_KERNELS)
    first_stride = _pair(hp.Choice("first_stride", list(FIRST_STRIDES), default="2x2"), FIRST_STRIDES)
    block = hp.Choice("block", ["depthwise_separable", "inverted_residual"], default="depthwise_separable")
    blocks = hp.Int("blocks", 1, 5, default=4)
    width = hp.Choice("width", [16, 24, 32, 48, 64], default=64)
    expansion = hp.Choice("expansion", [2, 3, 4], default=2)  # inverted residual blocks only
    dropout = hp.Choice("dropout", [0.1, 0.2, 0.3], default=0.2)
    learning_rate = hp.Choice("learning_rate", [0.001, 0.002, 0.005], default=0.002)

    inputs = keras.Input(shape=(frames * channels,), name="features")
    x = keras.layers.Reshape((frames, channels, 1))(inputs)
    x = conv_bn_relu(x, keras.layers.Conv2D(first_filters, first_kernel, strides=first_stride, padding="same",
                                             use_bias=False))
    x = keras.layers.Dropout(dropout)(x)
    for _ in range(blocks):
        if block == "depthwise_separable":
            x = conv_bn_relu(x, keras.layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False))
            x = conv_bn_relu(x, keras.layers.Conv2D(width, (1, 1), use_bias=False))
        else:
            x = _inverted_residual(x, width, expansion)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(settings["classes"], activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=f"kws_{block}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
