"""``tinyml-tfx devices``: list, check (table and --json) and calibrate, with one-paragraph errors."""

import json

import yaml
from click.testing import CliRunner

from components.mcu_size_gate import measure
from components.tflm import model as tflm_model
from pipeline.ui import cli
from tests.helpers import write_tiny_board


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args))


def test_devices_list_shows_the_catalogue():
    result = invoke("devices", "list")
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split()[-1] for line in result.output.splitlines()[1:] if line.strip()}
    assert rows == {"alif_e7_hp": "proxy", "esp32s3_devkitc": "calibrated", "nano33ble_sense": "fit",
                    "nucleo_h743zi2": "derived", "nucleo_l4r5zi": "fit", "pico": "derived", "sparkfun_edge": "fit"}


def _model_file(tmp_path, model):
    path = tmp_path / "model.tflite"
    path.write_bytes(model)
    return str(path)


def test_devices_check_prints_a_table_and_says_what_fits(tmp_path, tiny_int8_model):
    boards = write_tiny_board(tmp_path / "boards", flash_kib=32, ram_kib=2, reserved_ram_kib=1)
    result = invoke("devices", "check", _model_file(tmp_path, tiny_int8_model), "--board", "pico", "--board",
                    "tiny_mcu", "--boards-dir", boards)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.startswith(" pico")
            or line.startswith(" tiny_mcu")}
    assert rows["pico"].rstrip().endswith("fits") and "derived" in rows["pico"]
    assert "NO: RAM, Flash" in rows["tiny_mcu"]
    assert "tiny_mcu: RAM: arena" in result.output and "Tensor arena:" in result.output
    assert "CONV_2D" in result.output and "TFLM runtime" in result.output
    assert "estimates, not measurements" in result.output


def test_devices_check_json_holds_the_whole_analysis(tmp_path, tiny_int8_model):
    result = invoke("devices", "check", _model_file(tmp_path, tiny_int8_model), "--board", "pico", "--board",
                    "esp32s3_devkitc", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    pico, esp = report["targets"]
    assert report["primary_target"] == "pico" and pico["board"] == "pico"
    assert pico["latency_low_ms"] <= pico["latency_ms"] <= pico["latency_high_ms"]
    assert pico["latency_basis"] == "derived" and pico["calibration_points"] and "CMSIS-NN" in pico["engine"]
    assert pico["arena_bytes"] == report["arena"]["smallest_bytes"] + pico["cmsis_nn_scratch_bytes"]
    assert esp["latency_ms"] is None and esp["latency_basis"] == "not calibrated"
    assert set(report["latency_model"]["cores"]) >= {"cortex-m4", "cortex-m33", "cortex-m85", "cortex-m0plus"}
    assert report["macs_total"] == sum(m["macs"] for m in report["macs_per_op"]
                                       if m["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))


def test_a_latency_requirement_is_judged_at_the_upper_end_of_the_band(tmp_path, tiny_int8_model):
    model = _model_file(tmp_path, tiny_int8_model)
    pico = json.loads(invoke("devices", "check", model, "--board", "pico", "--json").output)["targets"][0]
    between = (pico["latency_ms"] + pico["latency_high_ms"]) / 2  # above the estimate, below its upper end
    result = invoke("devices", "check", model, "--board", "pico", "--max-latency-ms", str(between), "--json")
    verdict = json.loads(result.output)["targets"][0]
    assert not verdict["fits"] and verdict["reasons"][0].startswith(f"Latency: estimated {pico['latency_ms']:.1f} ms")
    assert "upper end is judged" in verdict["reasons"][0]
    roomy = invoke("devices", "check", model, "--board", "pico", "--max-latency-ms",
                   str(pico["latency_high_ms"] * 1.01), "--json")
    assert json.loads(roomy.output)["targets"][0]["fits"]


def test_devices_check_refuses_bad_input_in_one_paragraph(tmp_path, tiny_int8_model):
    unknown = invoke("devices", "check", _model_file(tmp_path, tiny_int8_model), "--board", "uno")
    assert unknown.exit_code == cli.EXIT_USAGE and "Unknown board 'uno'" in unknown.output
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer" * 10)
    result = invoke("devices", "check", str(junk), "--board", "pico")
    assert result.exit_code == cli.EXIT_USAGE and "not a TFLite flatbuffer" in result.output
    assert "Traceback" not in result.output


def test_devices_calibrate_turns_a_profile_into_a_board_profile_block(tmp_path, tiny_int8_model):
    work = measure.op_work(tflm_model.operators(tiny_int8_model))
    log = tmp_path / "serial.log"
    log.write_text('"Event","Tag","Ticks"\n' + "".join(f"{w.index},{w.op},{w.work * 5}\n" for w in work))
    model = _model_file(tmp_path, tiny_int8_model)
    result = invoke("devices", "calibrate", str(log), "--model", model, "--board", "pico")
    assert result.exit_code == 0, result.output
    block = yaml.safe_load(result.output[result.output.index("measured_op_cycles:"):])["measured_op_cycles"]
    assert set(block["cycles_per_unit"].values()) == {5.0} and block["spread"] == 0.0
    # the block makes the board's estimate a measured one
    boards = write_tiny_board(tmp_path / "boards", flash_kib=2048, ram_kib=264, reserved_ram_kib=8)
    with open(f"{boards}/tiny_mcu.yaml", "a") as f:
        yaml.safe_dump({"measured_op_cycles": block}, f)
    check = json.loads(invoke("devices", "check", model, "--board", "tiny_mcu", "--boards-dir", boards, "--json").output)
    target = check["targets"][0]
    assert target["latency_basis"] == "board"
    assert target["latency_ms"] == round(5 * sum(w.work for w in work) / 16e3, 2)  # the tiny board runs at 16 MHz
    wrong = invoke("devices", "calibrate", str(log), "--model", str(tmp_path / "model.tflite"), "--ticks-per-second",
                   "1000000")
    assert wrong.exit_code == cli.EXIT_USAGE and "--clock-mhz or --board" in wrong.output
