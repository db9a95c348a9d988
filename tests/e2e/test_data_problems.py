"""Data that cannot make a model stops the run early, in one paragraph, and nothing is released.

Each case is a real pipeline run through the CLI on a small dataset with one defect, as a
new user met them: every clip at the wrong sample rate, an empty eval list, a class missing
from eval. Each must stop at the component that can see the problem, say what and how
to fix it, and leave the registry untouched.
"""

import glob
import os
import shutil
import struct

import pytest

from pipeline.tasks.motion import generate as motion_generate
from tests.e2e.test_motion_pipeline import MOTION_CONFIG
from tests.helpers import tiny_config, write_config_yaml
from tests.unit.test_cli import invoke


def _message(result) -> str:
    return " ".join(result.output.split())  # the paragraph is wrapped for the terminal


def _assert_nothing_released(workdir: str) -> None:
    from components.ota import oci_layout

    stores = [os.path.dirname(p) for p in glob.glob(os.path.join(workdir, "registry", "**", "index.json"),
                                                    recursive=True)]
    assert [tag for store in stores for tag in oci_layout.OciLayout(store).tags()] == [], "a release was pushed"


def test_every_clip_at_the_wrong_rate_stops_at_the_example_gen(tiny_dataset, tmp_path):
    data = str(tmp_path / "data")
    shutil.copytree(tiny_dataset, data)
    for path in glob.glob(os.path.join(data, "**", "*.wav"), recursive=True):
        with open(path, "r+b") as f:  # the fmt chunk's sample rate and byte rate: 8 kHz mono 16-bit
            f.seek(24)
            f.write(struct.pack("<II", 8000, 16000))
    config = tiny_config(str(tmp_path / "w"), data)
    result = invoke("run", "--config", write_config_yaml(config, str(tmp_path / "c.yaml")), "--workdir", config.workdir)
    message = _message(result)
    assert result.exit_code == 1, result.output
    assert "The run stopped in AudioExampleGen" in message and "could not read any of the" in message
    assert "file(s): sample rate 8000 Hz, expected 16000 Hz" in message and "ingestion_report.json" in message
    assert "Traceback" not in result.output
    _assert_nothing_released(config.workdir)


def _motion_case(tmp_path, edit_lists) -> tuple:
    data = str(tmp_path / "data")
    motion_generate.generate_dataset(motion_generate.MotionSpec(subjects=6, repetitions=2, seconds=4.0), data)
    path = os.path.join(data, "validation_list.txt")
    with open(path) as f:
        entries = f.read().splitlines()
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in edit_lists(entries)))
    with open(MOTION_CONFIG) as f:
        text = f.read().replace("root: null", f"root: {data}").replace(
            "../../schemas/", os.path.join(os.path.dirname(MOTION_CONFIG), "..", "..", "schemas", "")).replace(
            "../tasks/", os.path.join(os.path.dirname(MOTION_CONFIG), "..", "tasks", ""))
    config_path = tmp_path / "motion.yaml"
    config_path.write_text(text)
    workdir = str(tmp_path / "w")
    return invoke("run", "--config", str(config_path), "--workdir", workdir), workdir


def test_an_empty_eval_list_stops_at_the_validation_gate(tmp_path):
    result, workdir = _motion_case(tmp_path, lambda entries: [])
    message = _message(result)
    assert result.exit_code == 1, result.output
    assert "The run stopped in DataValidationGate" in message and "split 'eval' has no examples at all" in message
    assert "validation_list.txt" in message and "min_eval_examples_per_class" in message
    _assert_nothing_released(workdir)


@pytest.mark.parametrize("missing", ["shake"])
def test_a_class_absent_from_eval_stops_at_the_validation_gate(tmp_path, missing):
    result, workdir = _motion_case(tmp_path, lambda entries: [e for e in entries if not e.startswith(missing + "/")])
    message = _message(result)
    assert result.exit_code == 1, result.output
    assert "split 'eval'" in message and f"has fewer than 3 of class(es) {missing} (0)" in message
    _assert_nothing_released(workdir)
