"""The RecognizeCommands port behaves as micro_speech's recognize_commands.cc (commit 778d6f8) reads."""

import numpy as np
import pytest

from components.streaming_evaluator import recognize
from components.streaming_evaluator.recognize import RecognitionSettings, RecognizeCommands

CLASSES = 4   # silence, unknown, yes, no: micro_speech's own classes


def one_hot(index, high=127, low=-128):
    scores = np.full(CLASSES, low, np.int8)
    scores[index] = high
    return scores


def feed(recognizer, rows, start=0, stride=100):
    return [recognizer.process_latest_results(np.asarray(row, np.int8), start + i * stride)
            for i, row in enumerate(rows)]


def test_too_few_results_or_too_short_a_span_gives_no_command():
    recognizer = RecognizeCommands(CLASSES, RecognitionSettings(average_window_ms=1000, detection_threshold=200,
                                                                suppression_ms=1500, minimum_count=3))
    out = feed(recognizer, [one_hot(2)] * 4, stride=100)
    # 1, 2 results: under minimum_count; 3 results span 200 ms < 1000 / 4; the 4th spans 300 ms.
    assert [r.is_new_command for r in out] == [False, False, False, True]
    assert [r.score for r in out[:3]] == [0, 0, 0] and out[3].score == 255 and out[3].label == 2


def test_average_is_integer_division_of_score_plus_128_and_the_first_highest_class_wins():
    recognizer = RecognizeCommands(CLASSES, RecognitionSettings(1000, 0, 0, 3))
    rows = [[-128, 0, 10, 10], [-128, 0, 11, 11], [-128, 1, 11, 11], [-128, 0, 11, 11]]
    out = feed(recognizer, rows)
    # averages of class 2 and 3: (138 + 139 + 139 + 139) // 4 = 138 each: a tie goes to class 2.
    assert (out[-1].label, out[-1].score) == (2, 555 // 4)


def test_threshold_is_strict():
    at = RecognizeCommands(CLASSES, RecognitionSettings(1000, 255, 1500, 1))
    assert not any(r.is_new_command for r in feed(at, [one_hot(2)] * 5))
    below = RecognizeCommands(CLASSES, RecognitionSettings(1000, 254, 1500, 1))
    assert any(r.is_new_command for r in feed(below, [one_hot(2)] * 5))


def test_same_command_is_suppressed_another_is_not_and_silence_lifts_suppression():
    settings = RecognitionSettings(average_window_ms=300, detection_threshold=100, suppression_ms=1000, minimum_count=1)
    recognizer = RecognizeCommands(CLASSES, settings)
    rows = [one_hot(2)] * 20
    times = [r.is_new_command for r in feed(recognizer, rows, stride=100)]
    # First command when two results span >= 75 ms (t=100), again only once more than 1000 ms passed.
    assert [i for i, new in enumerate(times) if new] == [1, 12]
    switching = RecognizeCommands(CLASSES, settings)
    out = feed(switching, [one_hot(2)] * 5 + [one_hot(3)] * 5 + [one_hot(2)] * 5, stride=100)
    news = [(i, r.label) for i, r in enumerate(out) if r.is_new_command]
    assert news[0] == (1, 2) and (news[1][1], news[2][1]) == (3, 2)   # a different label fires at once
    after_silence = RecognizeCommands(CLASSES, settings)
    out = feed(after_silence, [one_hot(0)] * 5 + [one_hot(0)] * 5, stride=100)
    # class 0 (silence) is never suppressed: every result above threshold after the window fills is new.
    assert sum(r.is_new_command for r in out) == 9


def test_a_full_queue_drops_new_results_as_push_back_does():
    recognizer = RecognizeCommands(CLASSES, RecognitionSettings(1000, 0, 0, 1))
    feed(recognizer, [one_hot(2)] * recognize.MAX_RESULTS, stride=10)          # t = 0..490
    out = feed(recognizer, [one_hot(3)] * 10, start=500, stride=10)          # queue full: dropped
    assert recognizer.dropped_results == 10 and all(r.label == 2 and r.score == 255 for r in out)


def test_results_out_of_order_are_refused():
    recognizer = RecognizeCommands(CLASSES)
    feed(recognizer, [one_hot(2)] * 2, start=1000)
    with pytest.raises(ValueError, match="increasing time order"):
        recognizer.process_latest_results(one_hot(2), 500)
    with pytest.raises(ValueError, match="int8"):
        recognizer.process_latest_results(np.zeros(CLASSES, np.float32), 2000)
    with pytest.raises(ValueError, match="should contain 4 elements"):
        recognizer.process_latest_results(np.zeros(3, np.int8), 2000)


@pytest.mark.parametrize("threshold", [0, 90, 150, 200, 230])
def test_the_threshold_sweep_equals_feeding_the_recognizer(threshold):
    rng = np.random.default_rng(threshold)
    logits = rng.normal(size=(400, CLASSES)) * 3
    logits[rng.random(400) < 0.2, 0] += 5     # stretches of silence, to exercise its rule
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = np.clip(np.round(probs * 256) - 128, -128, 127).astype(np.int8)
    times = np.cumsum(rng.integers(20, 200, size=400))
    settings = RecognitionSettings(average_window_ms=600, detection_threshold=threshold, suppression_ms=700,
                                   minimum_count=2)
    recognizer = RecognizeCommands(CLASSES, settings)
    expected = [(int(t), r.label, r.score) for t, r in zip(times, (recognizer.process_latest_results(s, int(t))
                                                                  for s, t in zip(scores, times))) if r.is_new_command]
    averaged = recognize.average_stream(scores, times, CLASSES, settings)
    assert recognize.commands(averaged, threshold, 700) == expected
    assert expected, "the random stream should produce some commands"


def test_minimum_count_reachable_at_a_stride():
    settings = RecognitionSettings(average_window_ms=1000, minimum_count=3)
    assert recognize.minimum_count_reachable(settings, 500)        # results at t, t-500, t-1000
    assert not recognize.minimum_count_reachable(settings, 520)
    two = RecognitionSettings(average_window_ms=1000, minimum_count=2)
    assert recognize.minimum_count_reachable(two, 1000) and not recognize.minimum_count_reachable(two, 1020)
