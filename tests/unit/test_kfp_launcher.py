"""The parts of the local KFP launcher that decide what runs: task order and trigger conditions."""

import pytest

from pipeline.runners import kfp_launcher

CONDITION = ("((inputs.artifacts['model_blessing'].artifacts[0].metadata['blessed'] == 1.0) && "
             "(inputs.artifacts['device_blessing'].artifacts[0].metadata['blessed'] == 1.0))")


def _blessings(model, device):
    return {"model_blessing": [{"metadata": {"blessed": model}}],
            "device_blessing": [{"metadata": {"blessed": device}}]}


def test_the_blessing_condition_is_true_only_when_every_blessing_is():
    assert kfp_launcher.evaluate_condition(CONDITION, _blessings(1.0, 1.0))
    assert not kfp_launcher.evaluate_condition(CONDITION, _blessings(1.0, 0.0))
    assert kfp_launcher.evaluate_condition("!(" + CONDITION + ")", _blessings(0.0, 1.0))
    assert kfp_launcher.evaluate_condition(CONDITION.replace("&&", "||"), _blessings(0.0, 1.0))


def test_a_condition_on_an_input_the_task_lacks_is_an_error_not_false():
    with pytest.raises(kfp_launcher.LaunchError, match="_Evaluator.blessing"):
        kfp_launcher.evaluate_condition(CONDITION.replace("model_blessing", "_Evaluator.blessing"),
                                        _blessings(1.0, 1.0))


def test_only_the_cel_subset_is_evaluated():
    with pytest.raises(kfp_launcher.LaunchError, match="outside the CEL subset"):
        kfp_launcher.evaluate_condition("__import__('os').system('true') == 0", {})


def test_tasks_run_after_what_they_depend_on_and_cycles_are_refused():
    spec = {"root": {"dag": {"tasks": {"push": {"dependentTasks": ["gate", "train"]}, "gate": {"dependentTasks": ["train"]},
                                       "train": {}}}}}
    assert kfp_launcher.task_order(spec) == ["train", "gate", "push"]
    spec["root"]["dag"]["tasks"]["train"]["dependentTasks"] = ["push"]
    with pytest.raises(kfp_launcher.LaunchError, match="cycle"):
        kfp_launcher.task_order(spec)
