"""What the StreamingEvaluator asks of a task family: its streams and its front end.

A *stream source* is a module (named by its import path, as TFX names a Transform's
``preprocessing_fn``) with four functions, all taking the component's ``source_settings``
(JSON) or what they return:

- ``plan(settings) -> [job]``: one JSON-able job per stream (cheap; the executor's process);
- ``load(job) -> LoadedStream``: the stream's samples and ground truth (runs in a worker
  process, so the module must not import TensorFlow at module level);
- ``features(samples, settings) -> float32 [frames, channels]``: the device's front end over the
  whole stream, state carried from frame to frame;
- ``composition(settings) -> dict``: what the streams are made of, for the report and card.

``settings["frames"]`` gives ``per_window`` (frames the model sees), ``stride_ms`` and
``length_ms`` (the front end's hop and window), from which inference times follow. Keyword
spotting's source is ``pipeline/tasks/kws/streams.py``.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Tuple

import numpy as np

from components.errors import PipelineInputError
from components.streaming_evaluator.metrics import Event

REQUIRED_FUNCTIONS = ("plan", "load", "features", "composition")


class StreamSourceError(PipelineInputError):
    """A stream (recording, label file, folder) that cannot be used; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class LoadedStream:
    name: str
    samples: np.ndarray        # int16
    sample_rate: int
    events: Tuple[Event, ...]  # ground truth: keyword occurrences and other labelled speech
    background: str = ""       # what the background is (a noise kind, "recorded")

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def import_source(module_path: str) -> ModuleType:
    """The stream source module at ``module_path``, checked for the four functions."""
    module = importlib.import_module(module_path)
    missing = [name for name in REQUIRED_FUNCTIONS if not callable(getattr(module, name, None))]
    if missing:
        raise TypeError(f"Stream source {module_path} lacks {', '.join(missing)} (see components/streaming_evaluator/"
                        "source.py).")
    return module
