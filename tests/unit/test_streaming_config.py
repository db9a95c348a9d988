"""The streaming settings in the config: defaults, validation with the field named, and task ownership."""

import os

import pytest

from pipeline import config as config_lib

MOTION_CONFIG = os.path.join(os.path.dirname(config_lib.DEFAULT_CONFIG), "motion.yaml")


def _text(path=config_lib.DEFAULT_CONFIG):
    with open(path) as f:
        return f.read()


def _write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_the_default_config_evaluates_30_minutes_at_the_target_boards_rate():
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    assert config.streaming.minutes == 30 and config.streaming.inference_stride_ms is None
    assert config.requirements.max_false_accepts_per_hour == 1.0 and config.family.has_streaming_evaluator
    assert not config_lib.load_config(MOTION_CONFIG).family.has_streaming_evaluator


def test_recordings_are_relative_to_the_config_file(tmp_path):
    path = _write(tmp_path, _text().replace("recordings: null", "recordings: my_recordings"))
    assert config_lib.load_config(path).streaming.recordings == str(tmp_path / "my_recordings")


@pytest.mark.parametrize("old,new,field", [
    ("  minimum_count: 2", "  minimum_count: 0", "streaming.minimum_count"),
    ("  inference_stride_ms: null", "  inference_stride_ms: -20", "streaming.inference_stride_ms"),
    ("  max_false_reject_rate: 0.5", "  max_false_reject_rate: 1.5", "requirements.max_false_reject_rate"),
    ("  minutes: 30", "  minutes: 30\n  minuts: 3", "streaming.minuts"),
])
def test_bad_streaming_values_name_the_field(tmp_path, old, new, field):
    assert old in _text()
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.load_config(_write(tmp_path, _text().replace(old, new)))
    assert f"'{field}'" in str(err.value) and "Fix:" in str(err.value)


@pytest.mark.parametrize("addition, field", [
    ("requirements:\n  max_false_accepts_per_hour: 2\n", "requirements.max_false_accepts_per_hour"),
    ("streaming:\n  minutes: 3\n", "streaming"),
])
def test_a_motion_config_refuses_the_streaming_fields_as_keyword_spottings(tmp_path, addition, field):
    section = addition.split(":")[0] + ":\n"
    text = _text(MOTION_CONFIG)
    text = text.replace(section, addition, 1) if section in text else text + addition
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.load_config(_write(tmp_path, text))
    assert f"'{field}' belongs to task 'keyword_spotting'" in str(err.value)
