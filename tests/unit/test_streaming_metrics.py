"""Detections against ground truth: matching, false accepts per hour, FRR, the operating point, label files."""

import math

import numpy as np
import pytest

from components.streaming_evaluator import labels_file, metrics, recognize
from components.streaming_evaluator.metrics import DetPoint, Detection, Event

KEYWORDS = ("yes", "no")


def test_a_detection_finds_a_keyword_between_its_start_and_its_end_plus_the_tolerance():
    events = [Event("yes", 1000, 1500), Event("no", 5000, 5400), Event("what time is it", 8000, 9000)]
    found = [Detection(1400, "yes", 220),            # inside the word
             Detection(2400, "yes", 210),            # a second detection of the same word: false accept
             Detection(5400 + 1000, "no", 230),      # exactly end + tolerance: found
             Detection(8500, "yes", 215),            # during other speech
             Detection(12000, "no", 240)]            # in noise
    m = metrics.match(events, found, KEYWORDS, tolerance_ms=1000)
    assert [(e.label, d.time_ms) for e, d in m.found] == [("yes", 1400), ("no", 6400)]
    assert [(d.time_ms, what) for d, what in m.false_accepts] == [
        (2400, "keyword 'yes'"), (8500, "other speech"), (12000, "noise")]
    assert m.missed == []
    late = metrics.match(events, [Detection(5400 + 1001, "no", 230)], KEYWORDS, tolerance_ms=1000)
    assert late.found == [] and len(late.false_accepts) == 1 and [e.label for e in late.missed] == ["yes", "no"]


def test_a_wrong_keyword_is_a_false_accept_and_the_word_is_missed():
    m = metrics.match([Event("yes", 1000, 1500)], [Detection(1600, "no", 250)], KEYWORDS, 1000)
    assert m.found == [] and [what for _, what in m.false_accepts] == ["keyword 'yes'"] and len(m.missed) == 1


def test_breakdown_per_keyword_and_snr_and_delay():
    events = [Event("yes", 0, 500, snr_db=5), Event("yes", 3000, 3500, snr_db=25), Event("no", 6000, 6300, snr_db=5)]
    m = metrics.match(events, [Detection(900, "yes", 200), Detection(6500, "no", 200)], KEYWORDS, 1000)
    b = metrics.breakdown(m, KEYWORDS)
    assert b["per_keyword"]["yes"]["false_reject_rate"] == 0.5 and b["per_keyword"]["no"]["false_reject_rate"] == 0
    assert b["per_keyword"]["yes"]["median_ms"] == 400 and b["delay"]["median_ms"] == 300
    assert b["per_snr_db"]["5"] == {"occurrences": 2, "missed": 0, "false_reject_rate": 0.0}
    assert b["per_snr_db"]["25"]["false_reject_rate"] == 1.0


def _curve(points):
    return [DetPoint(t, fa, fa_h, 0, frr) for t, fa, fa_h, frr in points]


def test_the_operating_point_is_the_lowest_frr_within_the_false_accept_budget():
    curve = _curve([(100, 9, 18.0, 0.05), (150, 1, 2.0, 0.10), (180, 0, 0.0, 0.20), (200, 0, 0.0, 0.20),
                    (255, 0, 0.0, 1.0)])
    verdict = metrics.choose_operating_point(curve, max_false_accepts_per_hour=1.0, max_false_reject_rate=0.25)
    assert verdict.blessed and verdict.point.threshold == 200   # lowest FRR within 1/h; highest threshold on a tie
    looser = metrics.choose_operating_point(curve, max_false_accepts_per_hour=2.0, max_false_reject_rate=0.25)
    assert looser.point.threshold == 150


def test_the_gate_refuses_and_says_which_requirement_fails_by_how_much():
    curve = _curve([(0, 40, 80.0, 0.10), (120, 6, 12.0, 0.15), (255, 0, 0.0, 1.0)])
    verdict = metrics.choose_operating_point(curve, max_false_accepts_per_hour=1.0, max_false_reject_rate=0.2)
    assert not verdict.blessed and verdict.point.threshold == 255
    refusal, = verdict.refusals
    assert "lowest false-reject rate is 1.000 (threshold 255), 0.800 above max_false_reject_rate 0.2" in refusal
    assert "needs threshold 120 or lower, where false accepts reach 12.00 per hour, 11.00 above" in refusal


def test_false_accept_upper_bound_is_the_exact_poisson_bound():
    # No false accept in T hours: the 95% upper bound is -ln(0.05) / T.
    assert metrics.false_accept_upper_bound(0, 0.5) == pytest.approx(-math.log(0.05) / 0.5, rel=1e-9)
    assert metrics.false_accept_upper_bound(3, 1.0) == pytest.approx(7.7537, abs=1e-3)   # a published table value


def test_det_curve_counts_every_threshold_on_scored_streams():
    # Class 2 ('yes') always on: averaged score 255 from the second result on; minimum_count 1.
    times = np.arange(0, 10_000, 500)
    scores = np.tile(np.array([-128, -128, 127], np.int8), (len(times), 1))
    settings = recognize.RecognitionSettings(average_window_ms=1000, suppression_ms=1500, minimum_count=1)
    averaged = recognize.average_stream(scores, times, 3, settings)
    stream = metrics.ScoredStream("s", 10.0, (Event("yes", 400, 900),), averaged)
    curve = metrics.det_curve([stream], ["_silence_", "_unknown_", "yes"], ["yes"], 1500, 1000)
    assert len(curve) == 256 and curve[255].false_accepts == 0 and curve[255].false_reject_rate == 1.0
    # commands at 500 (finds the word), then every 2000 ms (more than 1500 after the last): 2500 ... 8500.
    assert curve[0].misses == 0 and curve[0].false_accepts == 4
    assert curve[0].false_accepts_per_hour == pytest.approx(4 / (10 / 3600))


def test_label_files_round_trip_and_refuse_bad_lines_by_number():
    text = "# made in Audacity\n1.250\t1.700\tyes\n\\\t200.0\t4000.0\n3.0\t4.5\twhat time is it\n\n"
    events = labels_file.parse(text, "rec.labels.txt", duration_s=10)
    assert events == [Event("yes", 1250, 1700), Event("what time is it", 3000, 4500)]
    assert labels_file.parse(labels_file.render(events), "again") == events
    for bad, message in (("1.0 2.0 yes\n", "line 1: expected 'start<TAB>end<TAB>label'"),
                         ("a\t2\tyes\n", "must be numbers of seconds"),
                         ("3\t2\tyes\n", "0 <= start <= end"),
                         ("0\t1\tyes\n20\t21\tno\n", "line 2: the label starts at 20 s, after the end")):
        with pytest.raises(labels_file.LabelFileError, match=message):
            labels_file.parse(bad, "rec.labels.txt", duration_s=10)
