"""The command line's user-facing errors: one paragraph, a meaningful exit code, no traceback."""

import os
import re

from click.testing import CliRunner

from pipeline import config as config_lib
from pipeline.ui import cli
from tests.helpers import default_config_text


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args))


def test_help_lists_the_verbs():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "run" in result.output and "data" in result.output


def test_malformed_config_is_a_usage_error_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    text = default_config_text()
    assert re.search(r"^  epochs: \d+", text, re.M), "the default config sets training.epochs"
    path.write_text(re.sub(r"^  epochs: \d+", "  epochs: many", text, count=1, flags=re.M))
    result = invoke("run", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == cli.EXIT_USAGE
    assert "training.epochs" in result.output and str(path) in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, config_lib.ConfigError)


def test_missing_dataset_folder_names_the_folder_and_the_field(tmp_path):
    text = default_config_text().replace("root: null", "root: /nonexistent/speech")
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    result = invoke("run", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == cli.EXIT_USAGE
    assert "/nonexistent/speech" in result.output and "data.root" in result.output
    assert "Traceback" not in result.output


def test_schema_that_disagrees_with_the_words_is_refused_before_running(tmp_path, tiny_dataset):
    text = default_config_text().replace("root: null", f"root: {tiny_dataset}")
    text = text.replace('["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]', '["yes", "no", "up"]')
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    result = invoke("run", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == cli.EXIT_USAGE
    assert "string_domain 'label'" in result.output and "Traceback" not in result.output
    assert not os.path.exists(tmp_path / "w" / "metadata")


def test_data_generate_refuses_a_config_with_real_data(tmp_path, tiny_dataset):
    text = default_config_text().replace("root: null", f"root: {tiny_dataset}")
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    result = invoke("data", "generate", "--config", str(path), "--workdir", str(tmp_path / "w"))
    # The message is wrapped to the terminal's width, and where it breaks depends on the path's length.
    assert result.exit_code == cli.EXIT_USAGE and "nothing to generate" in " ".join(result.output.split())


def test_unknown_target_board_is_refused_with_the_known_boards(tmp_path):
    text = default_config_text().replace("target_device: nano33ble_sense", "target_device: arduino_uno")
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    result = invoke("run", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == cli.EXIT_USAGE
    assert "Unknown board 'arduino_uno'" in result.output and "target_device" in result.output
    assert "Traceback" not in result.output
