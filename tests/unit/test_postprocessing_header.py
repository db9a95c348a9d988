"""postprocessing.h compiles with g++ and holds the settings of the report it was written from."""

import subprocess

from components.streaming_evaluator import card, postprocessing, release

REPORT = {
    "settings": {"average_window_ms": 1000, "suppression_ms": 1500, "minimum_count": 2, "inference_stride_ms": 760,
                 "inference_stride_source": "target board's estimated latency", "frame_stride_ms": 20},
    "requirements": {"max_false_accepts_per_hour": 1.0, "max_false_reject_rate": 0.5},
    "operating_point": {"threshold": 187, "false_accepts": 0, "false_accepts_per_hour": 0.0,
                        "false_accepts_per_hour_upper_95": 5.99, "misses": 30, "false_reject_rate": 0.1,
                        "keyword_occurrences": 300, "found": 270},
    "composition": {"synthetic": True, "audio_seconds": 1800.0, "streams": 6, "keyword_occurrences": 300,
                    "other_speech": 290, "description": "SYNTHETIC streams."},
    "breakdown": {"delay": {"median_ms": 410.0, "p90_ms": 700.0}, "per_snr_db": {},
                  "per_keyword": {"yes": {"occurrences": 30, "false_reject_rate": 0.1, "false_accepts": 0,
                                          "median_ms": 400.0}}},
    "blessed": True, "refusals": [],
}

PROGRAM = """
#include <cstdio>
#include "postprocessing.h"
int main() {
  std::printf("kAverageWindowDurationMs=%d\\nkDetectionThreshold=%d\\nkSuppressionMs=%d\\nkMinimumCount=%d\\n"
              "kInferenceStrideMs=%d\\nkInferenceStrideSlices=%d\\n", (int)kAverageWindowDurationMs,
              (int)kDetectionThreshold, (int)kSuppressionMs, (int)kMinimumCount, (int)kInferenceStrideMs,
              (int)kInferenceStrideSlices);
  return 0;
}
"""


def compiled_values(header_text: str, folder) -> dict:
    """Compiles a program that includes ``header_text`` as postprocessing.h and returns what it prints."""
    (folder / postprocessing.HEADER_FILE).write_text(header_text)
    (folder / "main.cc").write_text(PROGRAM)
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(folder), "-o", str(folder / "check"),
                    str(folder / "main.cc")], check=True, capture_output=True, text=True)
    out = subprocess.run([str(folder / "check")], check=True, capture_output=True, text=True).stdout
    return {name: int(value) for name, value in (line.split("=") for line in out.split())}


def test_the_header_compiles_and_holds_the_chosen_settings(tmp_path):
    values = compiled_values(postprocessing.header(REPORT), tmp_path)
    assert values == postprocessing.settings_of(REPORT) == {
        "kAverageWindowDurationMs": 1000, "kDetectionThreshold": 187, "kSuppressionMs": 1500, "kMinimumCount": 2,
        "kInferenceStrideMs": 760, "kInferenceStrideSlices": 38}


def test_release_annotations_and_card_carry_the_settings_and_figures():
    header = postprocessing.header(REPORT).encode()
    annotations = release.annotations_of(header, REPORT)
    assert annotations[release.THRESHOLD_ANNOTATION] == "187" and annotations[release.STRIDE_ANNOTATION] == "760"
    assert annotations[release.FALSE_REJECT_ANNOTATION] == "0.1000"
    assert annotations[release.AUDIO_HOURS_ANNOTATION] == "0.5000"
    text = card.insert_section("# Model card\n\n## Metrics\nx\n\n## Limitations\n- y\n", REPORT)
    assert text.index("## Streaming") < text.index("## Limitations")
    assert "false accepts per hour: 0.00 (0 in 30.0 min; 95% upper bound 5.99)" in text
    assert "false-reject rate: 0.100 (30 of 300 missed)" in text and "| yes | 30 | 0.100 | 0 | 410 ms |" not in text
    assert "| yes | 30 | 0.100 | 0 | 400 ms |" in text
