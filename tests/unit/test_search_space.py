"""The search spaces and the device-aware search's choices, without training anything."""

import keras_tuner as kt
import pytest

from components.model_search import tuner as tuner_lib
from pipeline.tasks.kws import model as kws_model
from pipeline.tasks.kws import search as kws_search
from pipeline.tasks.motion import model as motion_model
from pipeline.tasks.motion import search as motion_search


def _layers(model):
    return [(type(layer).__name__, tuple(layer.output.shape[1:])) for layer in model.layers]


@pytest.mark.parametrize("space, build_default, shape, classes, width", [
    (kws_search, lambda s, c, w: kws_model.build_model("ds_cnn", s, c, w), (49, 40), 12, 64),
    (motion_search, lambda s, c, w: motion_model.build_model("conv1d", s, c, w), (200, 6), 4, 16),
])
def test_the_defaults_are_the_pre_search_model(space, build_default, shape, classes, width):
    settings = {"input_shape": shape, "classes": classes, "training": {"learning_rate": 0.002}}
    searched = space.build_model(kt.HyperParameters(), settings)
    default = build_default(shape, classes, width)
    assert searched.count_params() == default.count_params()
    assert _layers(searched) == _layers(default)


def test_channel_counts_are_multiples_of_8_for_cmsis_nn():
    hp = kt.HyperParameters()
    kws_search.build_model(hp, {"input_shape": (49, 40), "classes": 12, "training": {}})
    for name in ("first_filters", "width"):
        assert all(value % 8 == 0 for value in hp.space[[p.name for p in hp.space].index(name)].values)


def _cost(fits: bool, latency: float, arena: int) -> tuner_lib.CandidateCost:
    return tuner_lib.CandidateCost(fits=fits, reasons=[] if fits else ["RAM: too big"], model_bytes=1000, macs=1,
                                   arena_bytes=arena, ram_used=arena, flash_used=1, latency_ms=latency,
                                   latency_high_ms=latency * 1.2)


def test_the_oracle_redraws_candidates_that_break_a_budget(tmp_path):
    hp = kt.HyperParameters()
    hp.Choice("width", [8, 16, 32, 64, 128, 256])
    hp.Int("blocks", 1, 4)
    rejected = []
    oracle = tuner_lib.DeviceAwareHyperbandOracle(  # only width 8 fits: five of six draws break the budget
        judge_values=lambda values: _cost(values["width"] <= 8, 10.0 * values["width"], 100 * values["width"]),
        on_rejected=lambda values, cost: rejected.append(values), time_budget_seconds=60,
        hyperparameters=hp, objective=kt.Objective("val_accuracy", "max"), max_epochs=2, factor=2, seed=3)
    oracle._set_project_dir(str(tmp_path), "search")  # what a tuner does when it takes the oracle
    trials = [oracle.create_trial("tuner0") for _ in range(3)]
    running = [t for t in trials if t.status == "RUNNING"]
    assert running and all(t.hyperparameters.values["width"] == 8 for t in running)
    assert rejected and all(values["width"] > 8 for values in rejected)


def test_the_winner_is_the_most_accurate_at_full_fidelity_then_the_fastest():
    def record(n, accuracy, latency, epochs):
        return tuner_lib.CandidateRecord(candidate=n, hyperparameters={"tuner/epochs": epochs}, status="trained",
                                         cost=_cost(True, latency, 1000 + n), val_accuracy=accuracy)

    search = tuner_lib.DeviceAwareSearch.__new__(tuner_lib.DeviceAwareSearch)  # winner() reads records only
    search.tie_margin = 0.005
    search.records = [record(1, 0.95, 5.0, epochs=1),    # best, but at a lower fidelity
                      record(2, 0.900, 100.0, epochs=3),
                      record(3, 0.897, 50.0, epochs=3),   # within half a point: the faster one wins
                      record(4, 0.850, 10.0, epochs=3)]
    assert search.winner().candidate == 3
