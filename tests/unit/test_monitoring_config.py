"""The config's monitoring section: defaults, and wrong values named by field."""

from __future__ import annotations

import pytest
import yaml

from pipeline import config as config_lib


def _raw(**monitoring):
    with open(config_lib.DEFAULT_CONFIG) as f:
        raw = yaml.safe_load(f)
    raw["monitoring"] = monitoring
    return raw


def test_defaults_when_the_section_is_absent():
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    assert config.monitoring == config_lib.MonitoringConfig()
    assert 0 < config.monitoring.max_class_distance <= 1 and config.monitoring.min_summaries >= 1


def test_values_are_read_and_a_relative_telemetry_root_is_the_config_files(tmp_path):
    config = config_lib.parse_config(_raw(max_feature_divergence=0.5, min_summaries=3, telemetry_root="tele"),
                                     str(tmp_path / "c.yaml"))
    assert config.monitoring.max_feature_divergence == 0.5 and config.monitoring.min_summaries == 3
    assert config.monitoring.telemetry_root == str(tmp_path / "tele")


@pytest.mark.parametrize("field,value,words", [
    ("max_class_distance", 1.5, "greater than the maximum of 1"),
    ("max_feature_divergence", 0, "less than or equal to the minimum of 0"),
    ("min_summaries", 0, "less than the minimum of 1"),
    ("canary_window_periods", "three", "not of type 'integer'"),
    ("canary_max_confirmed_share_drop", 2, "greater than the maximum of 1"),
    ("max_drift", 0.1, "Additional properties"),
])
def test_a_wrong_value_names_the_field_and_the_fix(field, value, words):
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.parse_config(_raw(**{field: value}), "c.yaml")
    message = str(err.value)
    assert f"field 'monitoring.{field}'" in message and words in message and "Fix:" in message
