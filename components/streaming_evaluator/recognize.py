"""micro_speech's ``RecognizeCommands``, ported line for line, and a threshold sweep built on it.

The port follows TensorFlow Lite Micro's
``tensorflow/lite/micro/examples/micro_speech/recognize_commands.{h,cc}`` as they were at
commit 778d6f82494e1353f2e9e7213040abc78a95d988, the last before the example was rewritten
around the signal library (tflite-micro #2249 removed the file; nothing in the current tree
replaces it, so that version is still what firmware built on micro_speech runs). What the
device does, this does:

- scores are the model's int8 outputs, averaged as ``score + 128`` (0..255) with C integer
  division over the results of the last ``average_window_duration_ms`` (a result exactly that
  old is kept: the queue drops entries strictly older than ``now - window``);
- the queue holds at most 50 results (``PreviousResultsQueue::kMaxResults``); a result that
  arrives when it is full is dropped, as ``push_back`` does, before the old ones are pruned;
- fewer than ``minimum_count`` results, or results spanning less than a quarter of the window
  (integer division), give no command;
- the top class is the first with the highest average, and only if that average is above 0;
- a command is new when its average is *strictly* above ``detection_threshold`` and it differs
  from the previous command, or more than ``suppression_ms`` passed since it; after a command
  of class 0 (silence in micro_speech) there is no suppression at all;
- the previous command and its time change only when a new command is recognised.

Class 0 being silence is micro_speech's convention, which keyword-spotting labels here keep
(``_silence_`` first). Plain library: no TFX, no TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Deque, List, Optional, Sequence, Tuple

import numpy as np

MAX_RESULTS = 50            # PreviousResultsQueue::kMaxResults
INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
SCORE_OFFSET = 128          # int8 score + 128: the 0..255 scale of the average and the threshold
THRESHOLDS = range(0, 256)  # every value of the uint8 detection_threshold


@dataclasses.dataclass(frozen=True)
class RecognitionSettings:
    """``RecognizeCommands``' constructor arguments (micro_speech's defaults)."""

    average_window_ms: int = 1000
    detection_threshold: int = 200
    suppression_ms: int = 1500
    minimum_count: int = 3

    def __post_init__(self):
        if not 0 <= self.detection_threshold <= 255:
            raise ValueError(f"detection_threshold is a uint8, 0 to 255, not {self.detection_threshold}.")
        if self.average_window_ms <= 0 or self.suppression_ms < 0 or self.minimum_count < 0:
            raise ValueError(f"Invalid RecognizeCommands settings: {self}.")


@dataclasses.dataclass(frozen=True)
class Recognition:
    """What ``ProcessLatestResults`` returns: ``found_command`` (a class index), ``score``, ``is_new_command``."""

    label: int
    score: int
    is_new_command: bool


class RecognizeCommands:
    """One device's post-processor: feed it each inference's int8 scores with the audio time in ms."""

    def __init__(self, category_count: int, settings: RecognitionSettings = RecognitionSettings()):
        self.category_count = category_count
        self.settings = settings
        self._results: Deque[Tuple[int, np.ndarray]] = collections.deque()
        # previous_top_label_ starts as the literal "silence" (class 0) at INT32_MIN: no suppression.
        self._previous_top_label = 0
        self._previous_top_label_time = INT32_MIN
        self.dropped_results = 0    # push_back calls refused because the queue was full

    def average(self, scores: Sequence[int], current_time_ms: int) -> Optional[Tuple[int, int]]:
        """Queues a result and returns the (top class, average score) of the window, or None when
        there are too few results: the part of ``ProcessLatestResults`` that no threshold affects.

        Raises:
            ValueError: for scores of the wrong size or type, or a time earlier than the oldest
                queued result (the device's ``kTfLiteError`` cases).
        """
        scores = np.asarray(scores)
        if scores.shape != (self.category_count,):
            raise ValueError(f"The results for recognition should contain {self.category_count} elements, "
                             f"but there are {scores.size} in a {scores.ndim}-dimensional shape")
        if scores.dtype != np.int8:
            raise ValueError(f"The results for recognition should be int8 elements, but are {scores.dtype}")
        if self._results and current_time_ms < self._results[0][0]:
            raise ValueError(f"Results must be fed in increasing time order, but received a timestamp of "
                             f"{current_time_ms} that was earlier than the previous one of {self._results[0][0]}")
        if len(self._results) >= MAX_RESULTS:
            self.dropped_results += 1   # "Couldn't push_back latest result, too many already!"
        else:
            self._results.append((current_time_ms, scores.astype(np.int32) + SCORE_OFFSET))
        time_limit = current_time_ms - self.settings.average_window_ms
        while self._results and self._results[0][0] < time_limit:
            self._results.popleft()
        how_many = len(self._results)
        if how_many < self.settings.minimum_count or how_many == 0 or (
                current_time_ms - self._results[0][0] < self.settings.average_window_ms // 4):
            return None
        averages = sum(result for _, result in self._results) // how_many
        top, top_score = 0, 0
        for i, value in enumerate(averages):
            if value > top_score:
                top, top_score = i, int(value)
        return top, top_score

    def process_latest_results(self, scores: Sequence[int], current_time_ms: int) -> Recognition:
        """``RecognizeCommands::ProcessLatestResults``."""
        averaged = self.average(scores, current_time_ms)
        if averaged is None:
            return Recognition(self._previous_top_label, 0, False)
        top, top_score = averaged
        is_new = is_new_command(top, top_score, current_time_ms, self._previous_top_label,
                                self._previous_top_label_time, self.settings.detection_threshold,
                                self.settings.suppression_ms)
        if is_new:
            self._previous_top_label, self._previous_top_label_time = top, current_time_ms
        return Recognition(top, top_score, is_new)


def is_new_command(top: int, top_score: int, now_ms: int, previous_label: int, previous_time_ms: int,
                   threshold: int, suppression_ms: int) -> bool:
    """The decision at the end of ``ProcessLatestResults``."""
    if previous_label == 0 or previous_time_ms == INT32_MIN:
        time_since_last_top = INT32_MAX
    else:
        time_since_last_top = now_ms - previous_time_ms
    return top_score > threshold and (top != previous_label or time_since_last_top > suppression_ms)


@dataclasses.dataclass(frozen=True)
class Averaged:
    """Every inference's window average (independent of the threshold): ``valid`` False where
    ``RecognizeCommands`` returns early."""

    times_ms: np.ndarray   # int64 [n]
    valid: np.ndarray      # bool [n]
    top: np.ndarray        # int [n]
    score: np.ndarray      # int [n], 0..255
    dropped_results: int = 0


def average_stream(scores: np.ndarray, times_ms: Sequence[int], category_count: int,
                   settings: RecognitionSettings) -> Averaged:
    """Runs the averaging of ``RecognizeCommands`` over one stream's int8 scores [n, classes]."""
    recognizer = RecognizeCommands(category_count, settings)
    n = len(times_ms)
    valid, top, score = np.zeros(n, bool), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i, (row, now) in enumerate(zip(scores, times_ms)):
        averaged = recognizer.average(row, int(now))
        if averaged is not None:
            valid[i], (top[i], score[i]) = True, averaged
    return Averaged(np.asarray(times_ms, np.int64), valid, top, score, recognizer.dropped_results)


def commands(averaged: Averaged, threshold: int, suppression_ms: int) -> List[Tuple[int, int, int]]:
    """The new commands (time ms, class, score) ``RecognizeCommands`` with ``threshold`` recognises.

    Equal to feeding the stream through ``RecognizeCommands.process_latest_results`` (the
    averages do not depend on the threshold); only results above the threshold are visited.
    """
    found = []
    previous_label, previous_time = 0, INT32_MIN
    for i in np.nonzero(averaged.valid & (averaged.score > threshold))[0]:
        top, score, now = int(averaged.top[i]), int(averaged.score[i]), int(averaged.times_ms[i])
        if is_new_command(top, score, now, previous_label, previous_time, threshold, suppression_ms):
            previous_label, previous_time = top, now
            found.append((now, top, score))
    return found


def minimum_count_reachable(settings: RecognitionSettings, stride_ms: int) -> bool:
    """Whether ``minimum_count`` results can ever be in the averaging window at this inference
    stride (results ``stride_ms`` apart, the one exactly a window old included)."""
    in_window = settings.average_window_ms // stride_ms + 1
    return in_window >= settings.minimum_count and (in_window - 1) * stride_ms >= settings.average_window_ms // 4
