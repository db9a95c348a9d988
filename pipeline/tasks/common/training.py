"""What every task family's Trainer ``run_fn`` shares: the input pipeline, the step budget, the epoch log.

Each family's ``run_fn`` builds its own model and signatures; the data plumbing around
``model.fit`` is the same for all of them and lives here.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx_bsl.public import tfxio

# The signature every family exports for the device: model input in, probabilities out.
# The TFLiteQuantizer converts this one.
FEATURE_SIGNATURE = "serving_features"
HISTORY_FILE = "history.json"   # per-epoch metrics beside the model, for the run report
FEATURES_KEY = "features"       # the transformed model input, flattened (rows x columns)
OPTIMIZER_STEPS = "optimizer_steps"  # in history.json: the optimizer steps training took
FIT_SECONDS = "fit_seconds"          # in history.json: wall seconds of model.fit (training and per-epoch evaluation)
FIT_CPU_SECONDS = "fit_cpu_seconds"  # in history.json: CPU seconds of the Trainer's process meanwhile (all threads)


def dataset(file_pattern, data_accessor, tf_transform_output, batch_size: int, seed: int, shuffle: bool,
            label_key: str) -> tf.data.Dataset:
    """Batches of (transformed features, label) streamed from the transformed TFRecords, one pass."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=label_key,
                                       num_epochs=1, shuffle=shuffle, shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema)


def repeated(data: tf.data.Dataset) -> tf.data.Dataset:
    """``data`` repeated without end, for training to a step budget (``steps_per_epoch``), with tf.data's
    autotuning off.

    Why off: a repeated dataset's iterator never reaches its end, and destroying it when ``model.fit``
    returns waited, in about a third of the fits measured, until tf.data's autotuning thread next woke:
    the stalled fits of one-off runs ended exactly 10.23 or 20.47 s after they began, however early
    their last step had ended, i.e. 10 ms x (2^10 - 1) and x (2^11 - 1), the schedule of that thread
    (TensorFlow's ``ModelDatasetOp`` ``ModelThread``: a 10 ms period, doubled after each optimization).
    ``python -m pipeline.bench.budget_fit`` (8 fits of 300 steps each way, alternating): with
    ``repeat()`` 2 fits of 8 stalled, 4.6-4.7 s after their last step (3 of 8 in another run), and the
    others took 0.27-0.30 s to return; repeated here, 0.01 s each, with the same step time and the same
    trained weights. A dataset that runs out (training by epochs) ends its own iterator; its fits were
    not seen to stall.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return data.repeat().with_options(options)


def model_inputs(features, label):
    """Only the model input of a transformed example (other transformed features ride along)."""
    return {FEATURES_KEY: features[FEATURES_KEY]}, label


def searched_model(fn_args, search_module: str, settings: Dict[str, Any]) -> Optional[keras.Model]:
    """The compiled model the hyperparameters given to the Trainer describe (the ModelSearch's winner,
    or the repository's file through the Importer); None when the Trainer was given none."""
    if not getattr(fn_args, "hyperparameters", None):
        return None
    import keras_tuner as kt

    from pipeline.tasks.common.search import builder

    hp = kt.HyperParameters.from_config(fn_args.hyperparameters)
    logging.info("Trainer builds the model from hyperparameters %s", dict(hp.values))
    return builder(search_module, settings)(hp)


def train_and_eval_datasets(fn_args, tf_transform_output, training: Dict[str, Any], label_key: str,
                            select: Optional[Callable] = None) -> Tuple[tf.data.Dataset, tf.data.Dataset]:
    """The train split (shuffled) and the eval split, optionally mapped through ``select``."""
    train, evaluation = (dataset(files, fn_args.data_accessor, tf_transform_output, training["batch_size"],
                                 training["seed"], shuffle=shuffle, label_key=label_key)
                         for files, shuffle in ((fn_args.train_files, True), (fn_args.eval_files, False)))
    if select is not None:
        train, evaluation = train.map(select), evaluation.map(select)
    return train, evaluation


class EpochLogger(keras.callbacks.Callback):
    """Logs one line per epoch; the CLI turns these into a progress bar (pipeline/ui/progress.py)."""

    def __init__(self, epochs: int):
        super().__init__()
        self._epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted((logs or {}).items()) if k != "lr")
        logging.info("Training epoch %d/%d: %s", epoch + 1, self._epochs, metrics)


def fit(model: keras.Model, train: tf.data.Dataset, evaluation: tf.data.Dataset, epochs: int,
        train_steps: Optional[int], callbacks: List[keras.callbacks.Callback] = ()) -> Dict[str, Any]:
    """Trains ``model`` for ``epochs``; returns the per-epoch metrics, ``optimizer_steps`` (the steps taken),
    and the wall and CPU seconds that ``model.fit`` took (``fit_seconds``, ``fit_cpu_seconds``).

    With a step budget (TrainArgs.num_steps, the ``train_steps`` run knob) each of the
    epochs is cut to its share of the budget, and the data repeats if the budget is larger.
    """
    steps_per_epoch = None
    if train_steps:
        steps_per_epoch = max(1, math.ceil(train_steps / epochs))
        train = repeated(train)
    wall_start, cpu_start = time.monotonic(), time.process_time()
    history = model.fit(train, validation_data=evaluation, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        callbacks=[*callbacks, EpochLogger(epochs)], verbose=0)
    fit_seconds, fit_cpu_seconds = time.monotonic() - wall_start, time.process_time() - cpu_start
    metrics: Dict[str, Any] = {k: [float(v) for v in values] for k, values in history.history.items()}
    metrics[OPTIMIZER_STEPS] = int(model.optimizer.iterations.numpy())  # what a step budget is checked against
    # How busy training kept the cores (CPU seconds per wall second), without the Trainer's start-up and export.
    metrics[FIT_SECONDS], metrics[FIT_CPU_SECONDS] = round(fit_seconds, 3), round(fit_cpu_seconds, 3)
    return metrics


def write_history(model_run_dir: str, history: Dict[str, Any]) -> None:
    """Writes the per-epoch metrics (and the optimizer steps taken) as ``history.json`` into model_run."""
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, HISTORY_FILE), "w") as f:
        json.dump(history, f, indent=2)


def make_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput, input_shape: Tuple[int, int],
                    raw_inputs: Sequence[str]) -> Dict[str, Any]:
    """The three signatures every family's SavedModel exports.

    - ``serving_default``: serialized raw tf.Examples in (only ``raw_inputs`` are read),
      class probabilities out; the transform graph runs inside;
    - ``transform_features``: serialized raw tf.Examples in, transformed features out
      (TFMA uses it to get the label id);
    - ``serving_features``: the model input ``[batch, rows, columns]`` float32 in,
      probabilities out: what runs on the device after its own input processing, and
      what the quantizer converts.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()
    rows, columns = input_shape

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        raw_spec = tf_transform_output.raw_feature_spec()
        raw = tf.io.parse_example(serialized, {name: raw_spec[name] for name in raw_inputs})
        return {"probabilities": model(model.tft_layer(raw)[FEATURES_KEY])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec()))

    @tf.function(input_signature=[tf.TensorSpec([None, rows, columns], tf.float32, name=FEATURES_KEY)])
    def serve_features(inputs):
        return {"probabilities": model(tf.reshape(inputs, [-1, rows * columns]))}

    return {"serving_default": serve_examples, "transform_features": transform_features,
            FEATURE_SIGNATURE: serve_features}
