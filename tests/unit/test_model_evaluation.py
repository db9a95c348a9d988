"""Streaming a split of transformed examples: labels alone, chosen examples, and the evaluation a chunk at a time."""

import numpy as np
import pytest
import tensorflow as tf

from components import model_evaluation
from components.tflm import runtime as tflm_runtime
from tests.helpers import CLASSES, SHAPE, tiny_model_data

FEATURE_SPEC = {
    model_evaluation.FEATURES_FEATURE: tf.io.FixedLenFeature([SHAPE[0] * SHAPE[1]], tf.float32),
    model_evaluation.LABEL_FEATURE: tf.io.FixedLenFeature([], tf.int64),
}


def _write_split(folder, x, y, files=2):
    """Transform's layout: gzipped TFRecords of flattened features and a label id, in several files."""
    folder.mkdir()
    for part, rows in enumerate(np.array_split(np.arange(len(y)), files)):
        with tf.io.TFRecordWriter(str(folder / f"transformed_examples-{part:05d}-of-{files:05d}.gz"),
                                  options="GZIP") as writer:
            for i in rows:
                example = tf.train.Example(features=tf.train.Features(feature={
                    model_evaluation.FEATURES_FEATURE: tf.train.Feature(
                        float_list=tf.train.FloatList(value=x[i].reshape(-1))),
                    model_evaluation.LABEL_FEATURE: tf.train.Feature(int64_list=tf.train.Int64List(value=[y[i]]))}))
                writer.write(example.SerializeToString())
    return str(folder)


@pytest.fixture
def split(tmp_path, monkeypatch):
    monkeypatch.setattr(model_evaluation, "CHUNK_EXAMPLES", 7)   # many chunks, chosen rows on both sides of edges
    x, y = tiny_model_data(50, seed=3)
    return _write_split(tmp_path / "Split-eval", x, y), x, y


def test_the_labels_and_the_whole_split_come_back_in_file_order(split):
    uri, x, y = split
    assert np.array_equal(model_evaluation.split_labels(uri, FEATURE_SPEC), y)
    features, labels = model_evaluation.load_split(uri, FEATURE_SPEC, SHAPE)
    assert np.array_equal(labels, y) and np.allclose(features, x) and features.shape == (50, *SHAPE)


def test_only_the_chosen_examples_are_kept(split):
    uri, x, y = split
    chosen = np.array([0, 6, 7, 13, 14, 30, 49])
    features, labels = model_evaluation.load_split(uri, FEATURE_SPEC, SHAPE, indices=chosen)
    assert np.array_equal(labels, y[chosen]) and np.allclose(features, x[chosen])
    with pytest.raises(ValueError, match="increasing"):
        model_evaluation.load_split(uri, FEATURE_SPEC, SHAPE, indices=np.array([7, 6]))


def test_an_empty_split_is_named(tmp_path):
    (tmp_path / "Split-eval").mkdir()
    with pytest.raises(ValueError, match="No transformed examples in .*Split-eval"):
        model_evaluation.split_labels(str(tmp_path / "Split-eval"), FEATURE_SPEC)


def test_the_streamed_evaluation_equals_the_evaluation_of_the_whole_split(split, tiny_saved_model, tiny_int8_model):
    uri, x, y = split
    streamed = model_evaluation.evaluate_split(uri, FEATURE_SPEC, SHAPE, tiny_saved_model, "serving_features",
                                               tiny_int8_model, CLASSES)
    whole = model_evaluation.fidelity(
        y, model_evaluation.predict_saved_model(tiny_saved_model, "serving_features", x),
        tflm_runtime.predict(tiny_int8_model, x), model_evaluation.predict_tflite(tiny_int8_model, x), CLASSES)
    assert streamed.examples == 50
    assert streamed.to_dict() == whole.to_dict()
