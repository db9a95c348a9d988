"""The Trainer's ``run_fn`` for motion windows.

Exports three signatures, as the keyword-spotting Trainer does: ``serving_default``
(serialized raw examples -> probabilities, through the transform graph),
``transform_features`` (raw -> transformed, for TFMA) and ``serving_features``
(model input [batch, samples or spectral bins, channels] -> probabilities, what the
quantizer converts). Next to the model it writes the firmware's normalization header, read back
from the transform graph, under ``assets.extra/firmware/`` (the quantizer ships it).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx

from components.tflite_quantizer.executor import FIRMWARE_DIR
from pipeline.tasks.kws.trainer import HISTORY_FILE, _dataset, _EpochLogger
from pipeline.tasks.motion import model as model_lib
from pipeline.tasks.motion import normalization, preprocessing

FEATURE_SIGNATURE = "serving_features"


def make_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput, channels, rows: int
                    ) -> Dict[str, Any]:
    """The three signatures; ``rows`` is the model input's first axis (samples, or spectral bins)."""
    model.tft_layer = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        raw_spec = tf_transform_output.raw_feature_spec()
        raw = tf.io.parse_example(serialized, {c: raw_spec[c] for c in channels})
        transformed = model.tft_layer(raw)
        return {"probabilities": model(transformed[preprocessing.FEATURES_KEY])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        raw = tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())
        return model.tft_layer(raw)

    @tf.function(input_signature=[tf.TensorSpec([None, rows, len(channels)], tf.float32,
                                                name=preprocessing.FEATURES_KEY)])
    def serve_features(inputs):
        return {"probabilities": model(tf.reshape(inputs, [-1, rows * len(channels)]))}

    return {"serving_default": serve_examples, "transform_features": transform_features,
            FEATURE_SIGNATURE: serve_features}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the configured model and exports it with its signatures and the normalization header.

    ``fn_args.custom_config`` holds ``labels``, ``channels``, ``window_samples`` and the
    config's ``training`` section; ``fn_args.train_steps`` caps the optimizer steps when set.
    """
    config = fn_args.custom_config
    training = config["training"]
    channels, window = list(config[preprocessing.CHANNELS_CONFIG_KEY]), int(config[preprocessing.WINDOW_CONFIG_KEY])
    mode, bins = config[preprocessing.FEATURE_MODE_CONFIG_KEY], int(config[preprocessing.BINS_CONFIG_KEY])
    rows = bins if mode == "spectrum" else window
    keras.utils.set_random_seed(training["seed"])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)

    def model_input(features, label):  # the normalization constants ride along in every example
        return {preprocessing.FEATURES_KEY: features[preprocessing.FEATURES_KEY]}, label

    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                     training["batch_size"], training["seed"], shuffle=True).map(model_input)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                          training["batch_size"], training["seed"], shuffle=False).map(model_input)
    model = model_lib.build_model(training["model"], (rows, len(channels)),
                                  len(config[preprocessing.LABELS_CONFIG_KEY]), training["width"])
    model.compile(optimizer=keras.optimizers.Adam(training["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    epochs, steps_per_epoch = training["epochs"], None
    if fn_args.train_steps:
        steps_per_epoch = max(1, math.ceil(fn_args.train_steps / epochs))
        train = train.repeat()
    history = model.fit(train, validation_data=evaluation, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        callbacks=[_EpochLogger(epochs)], verbose=0)

    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as f:
        json.dump({k: [float(v) for v in values] for k, values in history.history.items()}, f, indent=2)

    tf.saved_model.save(model, fn_args.serving_model_dir,
                        signatures=make_signatures(model, tf_transform_output, channels, rows))
    constants = normalization.constants_from_graph(tf_transform_output, channels, window, mode, bins)
    firmware = os.path.join(fn_args.serving_model_dir, FIRMWARE_DIR)
    tf.io.gfile.makedirs(firmware)
    for name, text in ((normalization.HEADER_FILE, normalization.header(constants)),
                       (normalization.JSON_FILE, normalization.constants_json(constants))):
        with tf.io.gfile.GFile(os.path.join(firmware, name), "w") as f:
            f.write(text)
