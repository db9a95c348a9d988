"""The Trainer's ``run_fn`` for motion windows.

Exports the three signatures of ``pipeline.tasks.common.training.make_signatures``
(``serving_features`` takes [batch, samples or spectral bins, channels]). Next to the model
it writes the firmware's normalization header, read back from the transform graph, under
``assets.extra/firmware/`` (the quantizer ships it).
"""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx

from components.tflite_quantizer.executor import FIRMWARE_DIR
from pipeline.tasks.common import training as training_lib
from pipeline.tasks.common.search import SEARCH_MODULE_KEY, SETTINGS_KEY
from pipeline.tasks.motion import model as model_lib
from pipeline.tasks.motion import normalization, preprocessing


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the model (the hyperparameters' when given, else ``training.model``) and exports it with
    its signatures and the normalization header.

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

    # The normalization constants ride along in every transformed example; the model takes the window.
    train, evaluation = training_lib.train_and_eval_datasets(fn_args, tf_transform_output, training,
                                                             preprocessing.LABEL_KEY, select=training_lib.model_inputs)
    model = training_lib.searched_model(fn_args, config[SEARCH_MODULE_KEY], config[SETTINGS_KEY])
    if model is None:
        model = model_lib.build_model(training["model"], (rows, len(channels)),
                                      len(config[preprocessing.LABELS_CONFIG_KEY]), training["width"])
        model.compile(optimizer=keras.optimizers.Adam(training["learning_rate"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = training_lib.fit(model, train, evaluation, training["epochs"], fn_args.train_steps)
    training_lib.write_history(fn_args.model_run_dir, history)

    tf.saved_model.save(model, fn_args.serving_model_dir,
                        signatures=training_lib.make_signatures(model, tf_transform_output, (rows, len(channels)),
                                                                   channels))
    constants = normalization.constants_from_graph(tf_transform_output, channels, window, mode, bins)
    firmware = os.path.join(fn_args.serving_model_dir, FIRMWARE_DIR)
    tf.io.gfile.makedirs(firmware)
    for name, text in ((normalization.HEADER_FILE, normalization.header(constants)),
                       (normalization.JSON_FILE, normalization.constants_json(constants))):
        with tf.io.gfile.GFile(os.path.join(firmware, name), "w") as f:
            f.write(text)
