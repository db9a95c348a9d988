"""The Trainer's ``run_fn`` for keyword spotting.

The SavedModel has the three signatures of ``pipeline.tasks.common.training.make_signatures``;
``serving_default`` runs the transform graph, audio front end included, and
``serving_features`` takes the feature map ``[batch, frames, channels]`` that the
device's own front end computes.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx

from pipeline.tasks.common import training as training_lib
from pipeline.tasks.common.search import SEARCH_MODULE_KEY, SETTINGS_KEY
from pipeline.tasks.kws import features, model as model_lib


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the model and exports it with its signatures.

    The model is the one ``fn_args.hyperparameters`` describes (the ModelSearch's winner or the
    repository's hyperparameters file) when given, else ``training.model``.
    ``fn_args.custom_config`` holds ``labels``, ``frontend``, ``clip_samples``, the search
    module and model settings, and the config's ``training`` section; ``fn_args.train_steps``
    (TrainArgs.num_steps), when set, caps the optimizer steps.
    """
    config = fn_args.custom_config
    training = config["training"]
    keras.utils.set_random_seed(training["seed"])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_shape = features.feature_shape(config["frontend"], config["clip_samples"])

    train, evaluation = training_lib.train_and_eval_datasets(fn_args, tf_transform_output, training,
                                                             features.LABEL_KEY)

    model = training_lib.searched_model(fn_args, config[SEARCH_MODULE_KEY], config[SETTINGS_KEY])
    if model is None:
        model = model_lib.build_model(training["model"], feature_shape, len(config["labels"]), training["width"])
        model.compile(optimizer=keras.optimizers.Adam(training["learning_rate"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    schedule = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2)
    history = training_lib.fit(model, train, evaluation, training["epochs"], fn_args.train_steps, [schedule])
    training_lib.write_history(fn_args.model_run_dir, history)

    signatures = training_lib.make_signatures(model, tf_transform_output, feature_shape, [features.RAW_AUDIO_KEY])
    tf.saved_model.save(model, fn_args.serving_model_dir, signatures=signatures)
