"""The McuSizeGate executor on the quantized model of the tiny pipeline run."""

import json
import os

import pytest

from components.mcu_size_gate import executor
from components.types import DeviceReport, ModelBlessing, TFLiteModel
from pipeline import pipeline as tinyml_pipeline
from tests.helpers import make_artifact, write_tiny_board

@pytest.fixture(scope="module")
def quantized(tiny_pipeline_runs):
    _, (first, _, _) = tiny_pipeline_runs
    return make_artifact(TFLiteModel, first.artifact_uris[tinyml_pipeline.QUANTIZER]["quantized_model"])


def _run(quantized, tmp_path, target, extra=(), boards_dirs=(), max_latency_ms=None):
    blessing = make_artifact(ModelBlessing, tmp_path / "blessing")
    report = make_artifact(DeviceReport, tmp_path / "report")
    executor.Executor().Do({executor.QUANTIZED_MODEL_KEY: [quantized]},
                           {executor.BLESSING_KEY: [blessing], executor.REPORT_KEY: [report]},
                           {executor.TARGET_KEY: target, executor.EXTRA_TARGETS_KEY: json.dumps(list(extra)),
                            executor.BOARDS_DIRS_KEY: json.dumps(list(boards_dirs)),
                            executor.MAX_LATENCY_MS_KEY: max_latency_ms})
    return blessing, report


def test_a_board_that_is_too_small_is_refused_with_one_line_per_budget(quantized, tmp_path):
    boards = write_tiny_board(tmp_path / "boards")
    blessing, report = _run(quantized, tmp_path, "tiny_mcu", extra=["pico"], boards_dirs=[boards])
    assert blessing.get_int_custom_property("blessed") == 0
    ram, flash = blessing.get_string_custom_property("reason").split("; ")
    assert ram.startswith("RAM: arena ") and "+ reserve 8.0 KiB" in ram and ram.endswith("> 16.0 KiB on tiny_mcu")
    # 64 KiB of flash cannot hold the TFLM runtime and the model's kernels next to an 8 KiB reserve
    assert flash.startswith("Flash: model ") and "TFLM runtime and kernels" in flash
    assert flash.endswith("> 64.0 KiB on tiny_mcu")
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


def test_flash_counts_the_runtime_and_each_kernel_and_latency_is_estimated(quantized, tmp_path):
    from components.mcu_size_gate import kernel_flash

    _, report = _run(quantized, tmp_path, "pico")
    content = json.load(open(os.path.join(report.uri, executor.REPORT_JSON)))
    table = kernel_flash.load_table()
    ops = {op["name"] for op in content["ops"]}
    assert set(content["flash"]["kernel_bytes"]) == ops
    code = (table.runtime_bytes + table.runtime_rodata_bytes
            + sum(table.kernel_bytes[op] + table.kernel_rodata_bytes.get(op, 0) for op in ops))
    assert content["flash"]["read_only_data_bytes"] >= table.runtime_rodata_bytes > 0
    (pico,) = content["targets"]
    assert report.get_int_custom_property("flash_bytes") == content["model_bytes"] + code
    assert pico["flash_used"] == content["model_bytes"] + code + 64 * 1024  # pico's flash reserve
    assert 0 < pico["latency_low_ms"] <= pico["latency_ms"] <= pico["latency_high_ms"]
    assert pico["inferences_per_second"] == pytest.approx(1000 / pico["latency_ms"], rel=0.01)
    assert report.get_float_custom_property("latency_ms") == pico["latency_ms"]
    assert report.get_float_custom_property("latency_high_ms") == pico["latency_high_ms"]
    # no published result calibrates TFLM's reference kernels: said, not invented
    assert pico["latency_reference_kernels_ms"] is None and pico["reference_kernels"].startswith("not calibrated")


def test_the_report_names_engine_band_calibration_points_and_scratch(quantized, tmp_path):
    _, report = _run(quantized, tmp_path, "pico", extra=["alif_e7_hp", "esp32s3_devkitc"])
    content = json.load(open(os.path.join(report.uri, executor.REPORT_JSON)))
    pico, alif, esp = content["targets"]
    assert "CMSIS-NN" in pico["engine"] and pico["latency_basis"] == "derived"
    assert "v0.5/reference/NUCLEO-L4R5ZI" in pico["calibration_points"]
    assert alif["latency_basis"] == "proxy" and alif["kernels"] == "CMSIS-NN, Helium (MVE)"
    assert esp["latency_ms"] is None and esp["latency_basis"] == "not calibrated" and esp["cmsis_nn_scratch_bytes"] == 0
    for target in (pico, alif):
        assert target["arena_bytes"] == content["arena"]["smallest_bytes"] + target["cmsis_nn_scratch_bytes"]
        assert target["ram_used"] == target["arena_bytes"] + {"pico": 48, "alif_e7_hp": 128}[target["board"]] * 1024
    assert set(content["cmsis_nn_scratch"]) == {"plain", "mve"}
    model = content["latency_model"]
    assert model["engine"] == "TFLite Micro + CMSIS-NN"
    assert {fit["core"] for fit in model["fits"]} == {"cortex-m4", "cortex-m33", "cortex-m85"}
    for fit in model["fits"]:
        assert set(fit["results"]) == {"kws", "vww", "ic", "ad"}
        assert all(r["source"].endswith("results.txt") for r in fit["results"].values())
    assert report.get_int_custom_property("target_arena_bytes") == pico["arena_bytes"]
    page = open(os.path.join(report.uri, executor.REPORT_HTML)).read()
    assert "estimated" in page and "not calibrated" in page and "measured on" not in page.split("Latency")[1]


def test_a_model_too_slow_for_the_latency_requirement_is_refused(quantized, tmp_path):
    _, report = _run(quantized, tmp_path / "measure", "pico")
    latency_ms = report.get_float_custom_property("latency_ms")
    high_ms = report.get_float_custom_property("latency_high_ms")
    limit = (latency_ms + high_ms) / 2  # the estimate is within it, the band's upper end is not
    blessing, _ = _run(quantized, tmp_path / "gate", "pico", max_latency_ms=limit)
    assert blessing.get_int_custom_property("blessed") == 0
    reason = blessing.get_string_custom_property("reason")
    assert reason.startswith(f"Latency: estimated {latency_ms:.1f} ms per inference, up to {high_ms:.1f} ms within "
                             f"its band (the upper end is judged) > max {limit:g} ms on pico")
    blessed, _ = _run(quantized, tmp_path / "roomy", "pico", max_latency_ms=high_ms * 1.01)
    assert blessed.get_int_custom_property("blessed") == 1


def test_an_uncalibrated_primary_target_cannot_pass_a_latency_requirement(quantized, tmp_path):
    blessing, _ = _run(quantized, tmp_path, "esp32s3_devkitc", max_latency_ms=10_000)
    assert blessing.get_int_custom_property("blessed") == 0
    assert blessing.get_string_custom_property("reason").startswith("Latency: not calibrated for xtensa-lx7")
    without, _ = _run(quantized, tmp_path / "none", "esp32s3_devkitc")
    assert without.get_int_custom_property("blessed") == 1
