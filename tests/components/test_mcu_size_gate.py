"""The McuSizeGate executor on the quantized model of the tiny pipeline run."""

import json
import os

import pytest

from components.mcu_size_gate import executor
from components.types import DeviceReport, ModelBlessing, TFLiteModel
from pipeline import pipeline as kws_pipeline
from tests.helpers import make_artifact, write_tiny_board

@pytest.fixture(scope="module")
def quantized(tiny_pipeline_runs):
    _, (first, _, _) = tiny_pipeline_runs
    return make_artifact(TFLiteModel, first.artifact_uris[kws_pipeline.QUANTIZER]["quantized_model"])


def _run(quantized, tmp_path, target, extra=(), boards_dirs=()):
    blessing = make_artifact(ModelBlessing, tmp_path / "blessing")
    report = make_artifact(DeviceReport, tmp_path / "report")
    executor.Executor().Do({executor.QUANTIZED_MODEL_KEY: [quantized]},
                           {executor.BLESSING_KEY: [blessing], executor.REPORT_KEY: [report]},
                           {executor.TARGET_KEY: target, executor.EXTRA_TARGETS_KEY: json.dumps(list(extra)),
                            executor.BOARDS_DIRS_KEY: json.dumps(list(boards_dirs))})
    return blessing, report


def test_a_board_that_is_too_small_is_refused_with_one_line_per_budget(quantized, tmp_path):
    boards = write_tiny_board(tmp_path / "boards")
    blessing, report = _run(quantized, tmp_path, "tiny_mcu", extra=["pico"], boards_dirs=[boards])
    assert blessing.get_int_custom_property("blessed") == 0
    reason = blessing.get_string_custom_property("reason")
    assert reason.startswith("RAM: arena ") and "+ reserve 8.0 KiB" in reason and reason.endswith("> 16.0 KiB on tiny_mcu")
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    content = json.load(open(os.path.join(report.uri, executor.REPORT_JSON)))
    assert [t["board"] for t in content["targets"]] == ["tiny_mcu", "pico"]
    assert content["targets"][1]["fits"] and report.get_int_custom_property("fits_pico") == 1
    assert content["arena"]["smallest_bytes"] == report.get_int_custom_property("arena_bytes") > 0
    page = open(os.path.join(report.uri, executor.REPORT_HTML)).read()
    assert "tiny_mcu (primary)" in page and "over" in page and "http" not in page


def test_a_board_with_room_is_blessed(quantized, tmp_path):
    blessing, _ = _run(quantized, tmp_path, "pico")
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_string_custom_property("reason") == "fits pico"
