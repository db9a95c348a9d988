"""A minimal third task family, to prove the interface: vibration features from a CSV file.

Each row of ``*.csv`` files under ``data.root`` holds summary features of one vibration
window (RMS, peak, kurtosis, spectral band energies) and its ``label``; TFX's own
CsvExampleGen reads them. Transform z-scores every column; the Trainer fits a small
dense network. Nothing outside this file knows the family exists: it is registered at
test time with ``pipeline.tasks.register``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Tuple

import numpy as np

from components.ota.model_card import CardText
from pipeline.tasks.base import DataLayoutError, ReportText, TaskFamily

COLUMNS = ("rms", "peak", "kurtosis", "band_low", "band_mid", "band_high")
COLUMNS_KEY = "columns"
LABELS_KEY = "labels"


def preprocessing_fn(inputs, custom_config):
    """Each column z-scored over the training split, stacked into ``features``; the label as its index."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from pipeline.tasks.common.preprocessing import LABEL_KEY, RAW_LABEL_KEY, label_to_id
    from pipeline.tasks.common.training import FEATURES_KEY

    def dense(tensor):  # CsvExampleGen writes scalars; a batch of them is [batch] or [batch, 1]
        return tf.reshape(tf.sparse.to_dense(tensor) if isinstance(tensor, tf.SparseTensor) else tensor, [-1])

    columns = [tft.scale_to_z_score(tf.cast(dense(inputs[c]), tf.float32)) for c in custom_config[COLUMNS_KEY]]
    return {FEATURES_KEY: tf.stack(columns, axis=1),
            LABEL_KEY: label_to_id(dense(inputs[RAW_LABEL_KEY]), custom_config[LABELS_KEY])}


def run_fn(fn_args) -> None:
    """A dense network over the z-scored columns, exported with the shared signatures."""
    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras

    from pipeline.tasks.common import training as training_lib
    from pipeline.tasks.common.preprocessing import LABEL_KEY

    config = fn_args.custom_config
    training = config["training"]
    keras.utils.set_random_seed(training["seed"])
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train, evaluation = training_lib.train_and_eval_datasets(fn_args, transform_output, training, LABEL_KEY)
    columns = len(config[COLUMNS_KEY])
    inputs = keras.Input(shape=(columns,), name=training_lib.FEATURES_KEY)
    hidden = keras.layers.Dense(training["width"], activation="relu")(inputs)
    outputs = keras.layers.Dense(len(config[LABELS_KEY]), activation="softmax", name="probabilities")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(training["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = training_lib.fit(model, train, evaluation, training["epochs"], fn_args.train_steps)
    training_lib.write_history(fn_args.model_run_dir, history)
    tf.saved_model.save(model, fn_args.serving_model_dir, signatures=training_lib.make_signatures(
        model, transform_output, (1, columns), config[COLUMNS_KEY]))


def write_dataset(folder: str, labels=("healthy", "imbalance", "bearing_wear"), rows_per_label: int = 200,
                  seed: int = 3) -> None:
    """A small separable dataset: each fault shifts a different group of columns."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    lines = [",".join(COLUMNS + ("label",))]
    for index, label in enumerate(labels):
        for _ in range(rows_per_label):
            values = rng.normal(0.0, 1.0, len(COLUMNS)) + (6.0 if index else 0.0) * np.eye(len(COLUMNS))[index % len(COLUMNS)]
            lines.append(",".join(f"{v:.4f}" for v in values) + f",{label}")
    with open(os.path.join(folder, "windows.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")


class VibrationFeatures(TaskFamily):
    """Vibration windows summarised as a few features per row, from CSV files."""

    name = "vibration_features"
    example_gen_id = "CsvExampleGen"
    data_unit = "rows"
    preprocessing_fn = f"{__name__}.preprocessing_fn"
    run_fn = f"{__name__}.run_fn"
    code_package = "tests.support"
    config_defaults = {("training", "model"): "dense", ("training", "width"): 16}

    def example_gen(self, config):
        from tfx import v1 as tfx

        splits = [tfx.proto.SplitConfig.Split(name=name, hash_buckets=buckets)
                  for name, buckets in (("train", 8), ("eval", 1), ("test", 1))]
        return tfx.components.CsvExampleGen(
            input_base=config.data_root,
            output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=splits)),
        ).with_id(self.example_gen_id)

    def check_layout(self, config) -> None:
        if not os.path.isdir(config.data_root) or not any(
                name.endswith(".csv") for name in os.listdir(config.data_root)):
            raise DataLayoutError(f"The dataset folder {config.data_root} holds no .csv file of feature rows.")

    def transform_config(self, config) -> Dict[str, Any]:
        return {LABELS_KEY: list(config.data.labels), COLUMNS_KEY: list(COLUMNS)}

    def model_input_shape(self, config) -> Tuple[int, int]:
        return 1, len(COLUMNS)

    def card_text(self, config, synthetic: bool) -> CardText:
        return CardText(title=config.pipeline_name, intended_use="Machine condition from vibration features.",
                        data=f"The rows at {config.data_root}.", limitations=["A test family."],
                        labels=list(config.data.labels))

    def report_text(self, config) -> ReportText:
        return ReportText(synthetic_data="generated feature rows", model_inputs="z-scored vibration features")
