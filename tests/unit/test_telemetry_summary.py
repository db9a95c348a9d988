"""The firmware's telemetry summary (components/telemetry/telemetry_summary.h) compiled with g++,
against the Python mirror the simulator and the reference use, on the same data."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from components.telemetry import records, summary
from components.telemetry.summary import SummaryAccumulator

HEADER = summary.__file__.replace("summary.py", summary.HEADER_FILE)

PROGRAM = r"""
#include <cstdio>
#include "telemetry_summary.h"

int main() {
  int channels, classes, frames, windows, detections, confirmations;
  if (std::scanf("%d %d %d %d %d %d", &channels, &classes, &frames, &windows, &detections, &confirmations) != 6) {
    return 2;
  }
  TelemetrySummary s;
  if (telemetry_summary_reset(&s, channels, classes) != 0) return 3;
  int8_t row[64];
  for (int f = 0; f < frames; ++f) {
    for (int c = 0; c < channels; ++c) { int v; std::scanf("%d", &v); row[c] = (int8_t)v; }
    telemetry_summary_add_frame(&s, row);
  }
  for (int w = 0; w < windows; ++w) {
    for (int k = 0; k < classes; ++k) { int v; std::scanf("%d", &v); row[k] = (int8_t)v; }
    telemetry_summary_add_window(&s, row);
  }
  for (int d = 0; d < detections; ++d) { int k; std::scanf("%d", &k); telemetry_summary_add_detection(&s, k); }
  for (int d = 0; d < confirmations; ++d) { int k; std::scanf("%d", &k); telemetry_summary_add_confirmation(&s, k); }
  std::printf("{\"frames\": %u, \"windows\": %u, \"mean\": [", s.frames, s.windows);
  for (int c = 0; c < channels; ++c) std::printf("%s%.17g", c ? ", " : "", telemetry_summary_mean(&s, c));
  std::printf("], \"var\": [");
  for (int c = 0; c < channels; ++c) std::printf("%s%.17g", c ? ", " : "", telemetry_summary_variance(&s, c));
  std::printf("], \"top\": [");
  for (int k = 0; k < classes; ++k) std::printf("%s%u", k ? ", " : "", s.top_class_counts[k]);
  std::printf("], \"detections\": [");
  for (int k = 0; k < classes; ++k) std::printf("%s%u", k ? ", " : "", s.detections[k]);
  std::printf("], \"confirmed\": [");
  for (int k = 0; k < classes; ++k) std::printf("%s%u", k ? ", " : "", s.confirmed[k]);
  std::printf("], \"histogram\": [");
  for (int b = 0; b < TELEMETRY_SCORE_BINS; ++b) std::printf("%s%u", b ? ", " : "", s.score_histogram[b]);
  std::printf("]}\n");
  return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.fail("g++ is needed to compile the telemetry header (scripts/devenv.sh installs it in the Debian root)")
    folder = tmp_path_factory.mktemp("telemetry_c")
    shutil.copy(HEADER, folder / summary.HEADER_FILE)
    (folder / "main.cc").write_text(PROGRAM)
    subprocess.run([compiler, "-std=c++11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(folder / "summary"),
                    str(folder / "main.cc")], check=True, capture_output=True, cwd=folder)
    return str(folder / "summary")


@pytest.mark.parametrize("channels,classes,seed", [(40, 12, 1), (6, 4, 2), (64, 32, 3)])
def test_the_header_and_the_python_summary_agree_exactly(program, channels, classes, seed):
    rng = np.random.default_rng(seed)
    frames = rng.integers(-128, 128, (700, channels))
    scores = rng.integers(-128, 128, (90, classes))
    scores[:5] = 7                       # ties: the first maximum wins in both
    scores[5, :] = -128                  # the lowest bin
    scores[6, 0] = 127                   # the highest bin
    detections = rng.integers(0, classes, 9)
    # confirmations of detected classes, more than were detected for one class, and out of range
    confirmations = np.concatenate([detections[:6], [detections[0]] * 12, [-1, classes]])
    text = " ".join(map(str, [channels, classes, len(frames), len(scores), len(detections), len(confirmations),
                              *frames.ravel(), *scores.ravel(), *detections, *confirmations]))
    c = json.loads(subprocess.run([program], input=text.encode(), check=True, capture_output=True).stdout)

    acc = SummaryAccumulator(channels, classes)
    acc.add_frames(frames[:300])
    acc.add_frames(frames[300:])          # in pieces, as periods of audio come in
    acc.add_windows(scores)
    for k in detections:
        acc.add_detection(int(k))
    for k in confirmations:
        acc.add_confirmation(int(k))
    assert (c["frames"], c["windows"]) == (acc.frames, acc.windows) == (700, 90)
    assert c["mean"] == acc.means() and c["var"] == acc.variances()   # bit for bit
    assert c["top"] == acc.top_class_counts.tolist() and c["histogram"] == acc.score_histogram.tolist()
    assert c["detections"] == acc.detections.tolist()
    assert c["confirmed"] == acc.confirmed.tolist()
    # a class is confirmed at most as often as it was detected; out-of-range classes count nowhere
    detected = np.bincount(detections, minlength=classes)
    asked = np.bincount(confirmations[(confirmations >= 0) & (confirmations < classes)], minlength=classes)
    assert acc.confirmed.tolist() == np.minimum(detected, asked).tolist()
    assert c["top"][0] >= 5 and c["histogram"][0] >= 1 and c["histogram"][15] >= 1
    # and the figures are the data's: numpy's mean and variance of the same frames
    np.testing.assert_allclose(acc.means(), frames.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.variances(), frames.var(axis=0), rtol=1e-9)


def test_a_summary_record_meets_the_schema_and_the_config():
    labels, channels = ("_silence_", "_unknown_", "yes"), ("a", "b")
    acc = SummaryAccumulator(2, 3)
    acc.add_frames(np.array([[1, 2], [3, -4]]))
    acc.add_windows(np.array([[10, -5, 3], [-1, 2, 90]]))
    acc.add_detection(2)
    record = acc.record(labels, channels, device_id="dev-1", device_class="nano33ble_sense", model_version="0.1.0",
                        period=0, period_start="2026-12-01T00:00:00Z", period_seconds=86400)
    expect = records.Expectations(labels, channels, ("nano33ble_sense",))
    assert records.check_record(record, expect) is None
    assert record["detections"] == {"yes": 1} and record["top_class_counts"] == {"_silence_": 1, "_unknown_": 0,
                                                                                   "yes": 1}
    assert record["confirmed"] == {}      # the device reports confirmations: none this period
    acc.add_confirmation(2)
    identity = dict(device_id="dev-1", device_class="nano33ble_sense", model_version="0.1.0", period=0,
                    period_start="2026-12-01T00:00:00Z", period_seconds=86400)
    assert acc.record(labels, channels, **identity)["confirmed"] == {"yes": 1}
    # more confirmed than detected, or a class the model lacks: refused with the reason
    forged = {**acc.record(labels, channels, **identity), "confirmed": {"yes": 2}}
    assert "confirmed" in records.check_record(forged, expect) and "more" in records.check_record(forged, expect)
    forged["confirmed"] = {"no": 1}
    assert "class(es) the model does not have: no" in records.check_record(forged, expect)
    # more commands than inferences (post-processing reports at most one per inference): refused
    inflated = {**acc.record(labels, channels, **identity), "detections": {"yes": 3}, "confirmed": {"yes": 3}}
    assert "more than its inferences (windows, 2)" in records.check_record(inflated, expect)
    # a device without a confirmation signal leaves the field out, and its record is valid
    plain = SummaryAccumulator(2, 3, reports_confirmations=False)
    plain.add_windows(np.array([[-1, 2, 90]]))
    plain.add_detection(2)
    plain.add_confirmation(2)
    without = plain.record(labels, channels, **identity)
    assert "confirmed" not in without and records.check_record(without, expect) is None
    with pytest.raises(ValueError):
        SummaryAccumulator(65, 3)
