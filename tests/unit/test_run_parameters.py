"""Run parameters bound at compile time: a step budget given for one run reaches the Trainer's TrainArgs."""

import json

import pytest
from google.protobuf import json_format

from pipeline import pipeline as tinyml_pipeline
from pipeline.runners import local as run_local
from tests.helpers import tiny_config


def _trainer_train_args(pipeline_ir) -> dict:
    [trainer] = [n.pipeline_node for n in pipeline_ir.nodes
                 if n.pipeline_node.node_info.id == tinyml_pipeline.TRAINER]
    value = trainer.parameters.parameters["train_args"].field_value.string_value
    return json.loads(value)


def test_a_step_budget_given_for_a_run_is_the_trainers(tmp_path):
    config = tiny_config(str(tmp_path / "work"), str(tmp_path / "data"))
    default = json_format.MessageToJson(tinyml_pipeline.train_args(config))
    budget = {tinyml_pipeline.TRAIN_ARGS_PARAMETER: tinyml_pipeline.with_train_steps(default, 200)}
    # Bound once: a budget substituted after compile_for_run was silently dropped (the scale bench's Trainer
    # ran full epochs while it said "capped at 200 steps").
    assert int(_trainer_train_args(run_local.compile_for_run(config, "run-1", parameters=budget))["numSteps"]) == 200
    assert "numSteps" not in _trainer_train_args(run_local.compile_for_run(config, "run-2"))
    with pytest.raises(ValueError, match="no run parameter train_stepz"):
        run_local.compile_for_run(config, "run-3", parameters={"train_stepz": "1"})
