"""Blessings written the way TFX's own checks read them, shared by the project's gates."""

from __future__ import annotations

import os
from typing import Sequence

import tensorflow as tf
from absl import logging

BLESSED_FILE, NOT_BLESSED_FILE = "BLESSED", "NOT_BLESSED"


def write_blessing(blessing, model_uri: str, refusals: Sequence[str], passed_reason: str, gate_name: str) -> None:
    """Blesses ``model_uri`` when there are no refusals; otherwise records one reason per refusal.

    Sets the ``blessed`` (1/0), ``current_model`` and ``reason`` custom properties TFX's
    Pusher and our summaries read, and writes a BLESSED or NOT_BLESSED file, as TFX's
    Evaluator does.
    """
    blessed = not refusals
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_string_custom_property("current_model", model_uri)
    blessing.set_string_custom_property("reason", "; ".join(refusals) or passed_reason)
    tf.io.gfile.makedirs(blessing.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "w") as f:
        f.write("\n".join(refusals))
    for refusal in refusals:
        logging.warning("%s did not bless the model: %s", gate_name, refusal)
