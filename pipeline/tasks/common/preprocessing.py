"""TensorFlow ops every family's ``preprocessing_fn`` shares."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from pipeline.tasks.base import LABEL_KEY, RAW_LABEL_KEY  # noqa: F401 (the keys preprocessing_fns use)


def label_to_id(label: tf.Tensor, labels: Sequence[str]) -> tf.Tensor:
    """Class index of each label string ([batch] or [batch, 1]); -1 for a label not in ``labels``.

    By comparison with the fixed class list from the config: no vocabulary, no lookup
    table, nothing in the graph that a device converter would have to carry.
    """
    label = tf.reshape(label, [-1, 1])
    matches = tf.equal(label, tf.constant(list(labels))[tf.newaxis, :])
    return tf.where(tf.reduce_any(matches, axis=1), tf.argmax(tf.cast(matches, tf.int64), axis=1),
                    tf.constant(-1, tf.int64))
