import os

import pytest

from pipeline import config as config_lib
from tests.helpers import default_config_text


def write(tmp_path, text: str) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path)


def default_text() -> str:
    return default_config_text()


def test_default_config_loads_with_micro_speech_classes():
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    assert config.data.labels[:2] == ("_silence_", "_unknown_")
    assert config.data.words == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
    assert config.data.clip_samples == 16000
    assert config.uses_synthetic_data


def test_with_workdir_places_run_directories_under_it(tmp_path):
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(str(tmp_path))
    assert config.pipeline_root.startswith(str(tmp_path))
    assert config.metadata_path.endswith(".sqlite") and config.metadata_path.startswith(str(tmp_path))
    assert config.data_root == os.path.join(str(tmp_path), "data", "kws")


def test_relative_data_root_is_relative_to_the_config_file(tmp_path):
    text = default_text().replace("root: null", "root: ../speech_commands")
    config = config_lib.load_config(write(tmp_path, text))
    assert config.data.root == os.path.normpath(os.path.join(str(tmp_path), "..", "speech_commands"))
    assert config.with_workdir(str(tmp_path / "w")).data_root == config.data.root


def test_unquoted_yes_no_gets_a_yaml_specific_hint(tmp_path):
    text = default_text().replace('["yes", "no", "up"', '[yes, no, "up"')
    with pytest.raises(config_lib.ConfigError, match=r"data\.words.*quote the words"):
        config_lib.load_config(write(tmp_path, text))


@pytest.mark.parametrize("old,new,field", [
    ("epochs: 30", "epochs: 0", "training.epochs"),
    ("min_accuracy: 0.80", "min_accuracy: 1.5", "requirements.min_accuracy"),
    ("model: ds_cnn", "model: resnet", "training.model"),
    ("sample_rate: 16000", "sample_rate: 8000", "data.sample_rate"),
    ("width: 64", "width: 64\n  widht: 3", "training.widht"),
    ("pipeline_name: kws", "pipeline_name: KWS Model", "pipeline_name"),
    ("examples_compression: none", "examples_compression: zstd", "data.examples_compression"),
])
def test_schema_violations_name_the_field_and_the_file(tmp_path, old, new, field):
    assert old in default_text()
    path = write(tmp_path, default_text().replace(old, new))
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.load_config(path)
    message = str(err.value)
    assert f"'{field}'" in message and path in message and "Fix:" in message


def test_missing_required_section_is_named(tmp_path):
    text = default_text().replace("requirements:\n", "requirementz:\n")
    with pytest.raises(config_lib.ConfigError, match="requirement"):
        config_lib.load_config(write(tmp_path, text))


def test_malformed_yaml_names_the_line(tmp_path):
    with pytest.raises(config_lib.ConfigError, match=r"not valid YAML at line 2"):
        config_lib.load_config(write(tmp_path, "pipeline_name: kws\n\tdata: 1\n"))


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="does not exist"):
        config_lib.load_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(config_lib.ConfigError, match="must hold a mapping"):
        config_lib.load_config(write(tmp_path, "- a\n- b\n"))


MOTION_CONFIG = os.path.join(os.path.dirname(config_lib.DEFAULT_CONFIG), "motion.yaml")


def test_the_motion_config_selects_the_task_by_configuration():
    config = config_lib.load_config(MOTION_CONFIG)
    assert config.family.name == "motion" and config.data.labels == ("idle", "wave", "circle", "shake")
    assert (config.window_samples, config.hop_samples) == (200, 50)  # 2000 ms and 500 ms at 100 Hz
    assert config.training.model == "conv1d" and config.data.schema.endswith("schemas/motion/schema.pbtxt")
    assert config_lib.load_config(config_lib.DEFAULT_CONFIG).family.name == "keyword_spotting"  # the default


@pytest.mark.parametrize("source, old, new, field", [
    ("motion", "  labels: [idle, wave, circle, shake]\n", "  words: [\"yes\"]\n  labels: [idle, wave]\n", "data.words"),
    ("kws", "  seed: 59185\n", "  seed: 59185\n  labels: [a, b]\n", "data.labels"),
    ("motion", "  model: conv1d\n", "  model: ds_cnn\n", "training.model"),
    ("motion", "  timestamp_unit: s", "  timestamp_unit: minutes", "motion.timestamp_unit"),
])
def test_a_field_of_the_other_task_or_a_bad_motion_value_is_named(tmp_path, source, old, new, field):
    path = MOTION_CONFIG if source == "motion" else config_lib.DEFAULT_CONFIG
    with open(path) as f:
        text = f.read()
    assert old in text
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.load_config(write(tmp_path, text.replace(old, new)))
    assert f"'{field}'" in str(err.value) and "Fix:" in str(err.value)


def test_more_spectral_bins_than_the_window_has_is_refused(tmp_path):
    with open(MOTION_CONFIG) as f:
        text = f.read().replace("  hop_ms: 500\n", "  hop_ms: 500\n  features: spectrum\n  spectral_bins: 150\n")
    with pytest.raises(config_lib.ConfigError, match="'motion.spectral_bins' is 150.*only 100 FFT bins"):
        config_lib.load_config(write(tmp_path, text))
