"""The command line's user-facing errors: one paragraph, a meaningful exit code, no traceback."""

import os

from click.testing import CliRunner

from pipeline import config as config_lib
from pipeline.ui import cli
from tests.helpers import write_tiny_board


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args))


def test_help_lists_the_verbs():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "run" in result.output and "data" in result.output


def test_malformed_config_is_a_usage_error_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(open(config_lib.DEFAULT_CONFIG).read().replace("epochs: 15", "epochs: many"))
    result = invoke("run", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == cli.EXIT_USAGE
    assert "training.epochs" in result.output and str(path) in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, config_lib.ConfigError)


def test_missing_dataset_folder_names_the_folder_and_the_field(tmp_path):
    text = open(config_lib.DEFAULT_CONFIG).read().replace("root: null", "root: /nonexistent/speech")
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    result = invoke("run", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == cli.EXIT_USAGE
    assert "/nonexistent/speech" in result.output and "data.root" in result.output
    assert "Traceback" not in result.output


def test_schema_that_disagrees_with_the_words_is_refused_before_running(tmp_path, tiny_dataset):
    text = open(config_lib.DEFAULT_CONFIG).read().replace("root: null", f"root: {tiny_dataset}")
    text = text.replace('["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]', '["yes", "no", "up"]')
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    result = invoke("run", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == cli.EXIT_USAGE
    assert "string_domain 'label'" in result.output and "Traceback" not in result.output
    assert not os.path.exists(tmp_path / "w" / "metadata")


def test_data_generate_refuses_a_config_with_real_data(tmp_path, tiny_dataset):
    text = open(config_lib.DEFAULT_CONFIG).read().replace("root: null", f"root: {tiny_dataset}")
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    result = invoke("data", "generate", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == cli.EXIT_USAGE and "nothing to generate" in result.output


def test_unknown_target_board_is_refused_with_the_known_boards(tmp_path):
    text = open(config_lib.DEFAULT_CONFIG).read().replace("target_device: nano33ble_sense", "target_device: arduino_uno")
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    result = invoke("run", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == cli.EXIT_USAGE
    assert "Unknown board 'arduino_uno'" in result.output and "target_device" in result.output
    assert "Traceback" not in result.output


def test_devices_list_shows_the_catalogue():
    result = invoke("devices", "list")
    assert result.exit_code == 0
    for board in ("nano33ble_sense", "nucleo_l4r5zi", "nucleo_h743zi2", "pico", "esp32s3_devkitc",
                  "sparkfun_edge", "alif_e7_hp"):
        assert board in result.output


def test_devices_check_measures_the_model_and_says_what_fits(tmp_path, tiny_int8_model):
    model = tmp_path / "model.tflite"
    model.write_bytes(tiny_int8_model)
    boards = write_tiny_board(tmp_path / "boards", flash_kib=32, ram_kib=2, reserved_ram_kib=1)
    result = invoke("devices", "check", str(model), "--board", "pico", "--board", "tiny_mcu",
                    "--boards-dir", boards)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ")}
    assert lines["pico"].endswith("fits")
    assert "NO: RAM: arena" in lines["tiny_mcu"] and "Flash: model" in lines["tiny_mcu"]
    assert "Tensor arena:" in result.output and "CONV_2D" in result.output and "TFLM runtime" in result.output
    pico_ms = float(lines["pico"].split()[-3])
    slow = invoke("devices", "check", str(model), "--board", "pico", "--max-latency-ms", str(pico_ms / 2))
    assert "NO: Latency: estimated" in slow.output


def test_devices_check_unknown_board_is_a_usage_error(tmp_path, tiny_int8_model):
    model = tmp_path / "model.tflite"
    model.write_bytes(tiny_int8_model)
    result = invoke("devices", "check", str(model), "--board", "uno")
    assert result.exit_code == cli.EXIT_USAGE and "Unknown board 'uno'" in result.output
