"""model_labels.h: any class name the dataset has compiles, and reads back exactly, with an identifier each."""

import json
import shutil
import subprocess

import pytest

from components.tflite_quantizer import labels

NAMES = ["_silence_", "Walking", "Running fast", "Sitting-Down", "café", "naïve \"quote\" ??= back\\slash",
         "2nd place", "running_fast", "Жест"]

PROGRAM = """
#include <cstdio>
#include "model_labels.h"
int main() {
  static_assert(kCategoryCount == %d, "count");
  static_assert(%s == %d, "identifier of the last class");
  for (int i = 0; i < kCategoryCount; ++i) std::printf("%%s\\n", kCategoryLabels[i]);
  return 0;
}
"""


def test_every_name_compiles_and_reads_back_exactly(tmp_path):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.fail("g++ is needed to compile the generated header (scripts/devenv.sh installs it in the Debian root)")
    (tmp_path / labels.HEADER_FILE).write_text(labels.header(NAMES))
    rows = labels.mapping(NAMES)
    (tmp_path / "main.cc").write_text(PROGRAM % (len(NAMES), rows[-1]["identifier"], len(NAMES) - 1))
    subprocess.run([compiler, "-std=c++11", "-Wall", "-Werror", "-trigraphs", "-o", str(tmp_path / "labels"),
                    str(tmp_path / "main.cc")], check=True, capture_output=True, cwd=tmp_path)
    printed = subprocess.run([str(tmp_path / "labels")], check=True, capture_output=True).stdout.decode("utf-8")
    assert printed.splitlines() == NAMES


def test_identifiers_are_valid_unique_and_kept_in_the_mapping():
    rows = labels.mapping(NAMES)
    identifiers = [row["identifier"] for row in rows]
    assert len(set(identifiers)) == len(NAMES) and all(i.isidentifier() and i.isascii() for i in identifiers)
    assert identifiers[2] == "kLabelRunningFast" and identifiers[7] == "kLabelRunningFast_2"  # the same words: made unique
    assert identifiers[4] == "kLabelCafU00E9"
    assert json.loads(labels.mapping_json(NAMES)) == rows and [r["label"] for r in rows] == NAMES
