"""The Trainer's ``run_fn`` for keyword spotting, and the signatures it exports.

The SavedModel has three signatures:
- ``serving_default``: serialized raw tf.Examples in, class probabilities out
  (the Transform graph, front end included, runs inside);
- ``transform_features``: serialized raw tf.Examples in, transformed features out
  (TFMA uses it to get ``label_id``);
- ``serving_features``: the feature map ``[batch, frames, channels]`` float32 in,
  probabilities out. This is what runs on the device, after the device's own front
  end, and what the TFLite converter takes.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from pipeline.tasks.kws import features, model as model_lib

FEATURE_SIGNATURE = "serving_features"  # what the quantizer converts
HISTORY_FILE = "history.json"


def _dataset(file_pattern, data_accessor, tf_transform_output, batch_size: int, seed: int,
             shuffle: bool) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=features.LABEL_KEY,
                                       num_epochs=1, shuffle=shuffle, shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema)


def make_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                    feature_shape) -> Dict[str, Any]:
    """The three serving signatures described in the module docstring."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    frames, channels = feature_shape

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        raw_spec = tf_transform_output.raw_feature_spec()
        raw = tf.io.parse_example(serialized, {features.RAW_AUDIO_KEY: raw_spec[features.RAW_AUDIO_KEY]})
        transformed = model.tft_layer(raw)
        return {"probabilities": model(transformed[features.FEATURES_KEY])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        raw = tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())
        return model.tft_layer(raw)

    @tf.function(input_signature=[tf.TensorSpec([None, frames, channels], tf.float32, name=features.FEATURES_KEY)])
    def serve_features(feature_map):
        return {"probabilities": model(tf.reshape(feature_map, [-1, frames * channels]))}

    return {"serving_default": serve_examples, "transform_features": transform_features,
            FEATURE_SIGNATURE: serve_features}


class _EpochLogger(keras.callbacks.Callback):
    """Logs one line per epoch; the CLI turns these into a progress bar (pipeline/progress.py)."""

    def __init__(self, epochs: int):
        super().__init__()
        self._epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted((logs or {}).items()) if k != "lr")
        logging.info("Training epoch %d/%d: %s", epoch + 1, self._epochs, metrics)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the configured model and exports it with its signatures.

    ``fn_args.custom_config`` holds ``labels``, ``frontend``, ``clip_samples`` and
    the config's ``training`` section; ``fn_args.train_steps`` (TrainArgs.num_steps),
    when set, caps the optimizer steps.
    """
    config = fn_args.custom_config
    training = config["training"]
    keras.utils.set_random_seed(training["seed"])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_shape = features.feature_shape(config["frontend"], config["clip_samples"])

    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                     training["batch_size"], training["seed"], shuffle=True)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                          training["batch_size"], training["seed"], shuffle=False)

    model = model_lib.build_model(training["model"], feature_shape, len(config["labels"]), training["width"])
    model.compile(optimizer=keras.optimizers.Adam(training["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    schedule = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2)
    epochs, steps_per_epoch = training["epochs"], None
    if fn_args.train_steps:
        # A step budget (TrainArgs.num_steps, the train_steps run knob): the same number of
        # epochs, each cut to its share of the budget; the data repeats if the budget is larger.
        steps_per_epoch = max(1, math.ceil(fn_args.train_steps / epochs))
        train = train.repeat()
    history = model.fit(train, validation_data=evaluation, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        callbacks=[schedule, _EpochLogger(epochs)], verbose=0)

    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as f:
        json.dump({k: [float(v) for v in values] for k, values in history.history.items()}, f, indent=2)

    signatures = make_signatures(model, tf_transform_output, feature_shape)
    tf.saved_model.save(model, fn_args.serving_model_dir, signatures=signatures)
