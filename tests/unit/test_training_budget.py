"""Training to a step budget: the repeated dataset (tf.data autotuning off, same elements) and the fit's step count."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from pipeline.bench import budget_fit
from pipeline.tasks.common import training


def test_repeated_cycles_the_same_elements_with_autotuning_off():
    data = tf.data.Dataset.range(5).map(lambda x: x * 10)
    assert data.options().autotune.enabled is not False

    repeated = training.repeated(data)

    assert repeated.options().autotune.enabled is False
    assert [int(x) for x in repeated.take(12)] == [0, 10, 20, 30, 40] * 2 + [0, 10]


def test_fit_with_a_budget_larger_than_the_data_takes_exactly_the_budget():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)          # 5 batches a pass
    evaluation = tf.data.Dataset.from_tensor_slices((x[:16], y[:16])).batch(8)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")

    history = training.fit(model, train, evaluation, epochs=2, train_steps=13)

    assert history[training.OPTIMIZER_STEPS] == 14          # ceil(13 / 2) = 7 steps in each of 2 epochs
    assert len(history["loss"]) == 2 and len(history["val_loss"]) == 2
    assert history[training.FIT_SECONDS] > 0


def test_budget_fit_summary_counts_the_stalled_fits():
    fits = [{"steps_seconds": 5.0, "tail_seconds": 0.01, "cores": 1.5, "weights": "a"},
            {"steps_seconds": 5.4, "tail_seconds": 4.8, "cores": 0.8, "weights": "a"},
            {"steps_seconds": 5.2, "tail_seconds": 0.3, "cores": 1.4, "weights": "b"}]

    summary = budget_fit.summarise(fits)

    assert summary["stalled"] == 1
    assert summary["median_steps_seconds"] == 5.2
    assert summary["tails_seconds"] == [0.01, 4.8, 0.3]
    assert summary["weights"] == ["a", "b"]
