"""The motion search space: a temporal CNN (filters, depth, kernel) or a dense network.

``build_model(hp, settings)`` defines the hyperparameters and builds the model; the
search and the Trainer call it alike. Defaults reproduce the pre-search default (conv1d,
width 16: three strided convolutions of 16, 32, 32 filters, kernel 5; learning rate 0.003).
"""

from __future__ import annotations

from typing import Any, Mapping

import tf_keras as keras


def build_model(hp, settings: Mapping[str, Any]) -> keras.Model:
    """The candidate ``hp`` describes, compiled; ``settings`` gives ``input_shape``, ``classes``, ``training``."""
    samples, channels = settings["input_shape"]
    architecture = hp.Choice("architecture", ["conv1d", "mlp"], default="conv1d")
    width = hp.Choice("width", [8, 16, 24, 32], default=16)
    depth = hp.Int("depth", 2, 4, default=3)
    kernel = hp.Choice("kernel", [3, 5, 7], default=5)
    dropout = hp.Choice("dropout", [0.0, 0.1, 0.2], default=0.1)
    learning_rate = hp.Choice("learning_rate", [0.001, 0.003, 0.01], default=0.003)

    inputs = keras.Input(shape=(samples * channels,), name="features")
    if architecture == "conv1d":
        x = keras.layers.Reshape((samples, 1, channels))(inputs)
        for layer in range(depth):
            filters = width if layer == 0 else 2 * width
            x = keras.layers.Conv2D(filters, (kernel, 1), strides=(2, 1), padding="same", activation="relu")(x)
        x = keras.layers.Dropout(dropout)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
    else:
        x = inputs
        for layer in range(depth - 1):
            x = keras.layers.Dense(2 * width if layer == 0 else width, activation="relu")(x)
            x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(settings["classes"], activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=f"motion_{architecture}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
