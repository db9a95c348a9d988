"""A task family registered from outside the project runs through the same pipeline, locally and compiled.

tests/support/vibration_family.py is all there is of it: CSV feature rows read by TFX's
CsvExampleGen, a z-score Transform and a dense network. If create_pipeline, the local
runner, the report or the Kubeflow compiler still branched on the built-in families,
this family could not get through them.
"""

import os

import pytest
import yaml

from pipeline import config as config_lib
from pipeline import pipeline as tinyml_pipeline
from pipeline import tasks
from pipeline.runners import kubeflow as run_kubeflow
from pipeline.runners import local as run_local
from pipeline.ui import report
from tests.support import vibration_family

LABELS = ["healthy", "imbalance", "bearing_wear"]


@pytest.fixture(scope="module")
def family():
    registered = tasks.register(vibration_family.VibrationFeatures())
    yield registered
    tasks.unregister(registered.name)


def _config(family, tmp_path, **overrides) -> config_lib.PipelineConfig:
    data = str(tmp_path / "data")
    vibration_family.write_dataset(data, LABELS)
    raw = {
        "pipeline_name": "vibration", "task": family.name, "target_device": "nano33ble_sense",
        "requirements": {"min_accuracy": 0.5},
        "data": {"root": data, "labels": LABELS, "schema": None},
        "training": {"epochs": 12, "batch_size": 16},
        "quantization": {"calibration_examples": 50},
        "kubeflow": {"pipeline_root": "gs://bucket/runs"},
        **overrides,
    }
    path = tmp_path / "vibration.yaml"
    path.write_text(yaml.safe_dump(raw))
    return config_lib.load_config(str(path))


def test_the_family_is_named_in_config_errors_until_registered(tmp_path, family):
    assert family.name in tasks.family_names()
    with pytest.raises(config_lib.ConfigError, match="no task family 'accelerometer_v2'.*keyword_spotting"):
        config_lib.parse_config({"pipeline_name": "x", "task": "accelerometer_v2", "target_device": "pico",
                                 "requirements": {"min_accuracy": 0.5}, "data": {}, "training": {}}, "x.yaml")
    config = _config(family, tmp_path)
    assert config.family is family and config.training.model == "dense"  # the family's default


def test_create_pipeline_takes_every_task_piece_from_the_family(tmp_path, family):
    config = _config(family, tmp_path).with_workdir(str(tmp_path / "work"))
    built = tinyml_pipeline.create_pipeline(config)
    by_id = {c.id: c for c in built.components}
    assert {"CsvExampleGen", tinyml_pipeline.INFERRED_SCHEMA_GEN, tinyml_pipeline.PUSHER} <= set(by_id)
    assert "AudioExampleGen" not in by_id and "MotionExampleGen" not in by_id
    transform = by_id[tinyml_pipeline.TRANSFORM].exec_properties
    assert transform["preprocessing_fn"] == "tests.support.vibration_family.preprocessing_fn"
    assert by_id[tinyml_pipeline.TRAINER].exec_properties["run_fn"] == "tests.support.vibration_family.run_fn"


def test_the_family_compiles_for_kubeflow(tmp_path, family):
    config = _config(family, tmp_path).for_kubeflow()
    package = run_kubeflow.compile_pipeline(config, str(tmp_path / "vibration.yaml"))
    tasks_in_dag = package["pipeline_spec"]["root"]["dag"]["tasks"]
    assert {"CsvExampleGen", tinyml_pipeline.TRANSFORM, tinyml_pipeline.TRAINER, tinyml_pipeline.PUSHER} <= set(
        tasks_in_dag)
    trainer = tasks_in_dag[tinyml_pipeline.TRAINER]["inputs"]["parameters"]
    assert trainer["run_fn"]["runtimeValue"]["constant"] == "tests.support.vibration_family.run_fn"


def test_the_family_runs_end_to_end_and_is_released(tmp_path, family):
    config = _config(family, tmp_path).with_workdir(str(tmp_path / "work"))
    summary = run_local.run(config)
    states = {c.node_id: c.state for c in summary.components}
    assert states["CsvExampleGen"] == "done" and states[tinyml_pipeline.PUSHER] == "done", states
    assert summary.eval_accuracy > 0.8 and summary.blessed  # three separable classes: chance is 0.33
    assert summary.quantization["blessed"] and summary.size_gate["blessed"] and summary.release["pushed"]
    page = report.write_report(summary, config, str(tmp_path / "report"))
    with open(page) as f:
        html = f.read()
    assert "schema SchemaGen inferred from this data" in html and "z-scored vibration features" in html
    with open(os.path.join(os.path.dirname(page), report.MODEL_CARD_FILE)) as f:
        card = f.read()
    assert "Machine condition from vibration features." in card and "bearing_wear" in card
