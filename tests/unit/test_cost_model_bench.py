"""The leave-one-model-out table `make bench` prints: its misses are the rows beyond the target,
each explained from the model files, and cycles per MAC come from the published figures."""

import pytest

from pipeline.bench import cost_model as bench_cost_model


@pytest.fixture(scope="module")
def result():
    return bench_cost_model.evaluate()


def test_every_row_beyond_the_target_is_listed_as_a_miss_with_its_class(result):
    beyond = {(r["core"], r["model"]) for r in result["rows"] if abs(r["held_out_error"]) > result["target"]}
    assert {(m["core"], m["model"]) for m in result["misses"]} == beyond
    assert result["pairs"] - result["held_out_within_target"] == len(beyond)
    for miss in result["misses"]:
        assert miss["model"] not in miss["fitted_share"] and len(miss["fitted_share"]) == 3


def test_published_cycles_per_mac_are_the_published_cycles_over_the_models_macs(result):
    # v0.5 reference, KWS: 5.497 inferences per second at 120 MHz; DS-CNN: 2,656,768 MACs
    assert result["published_cycles_per_mac"]["cortex-m4"]["kws"] == pytest.approx(120e6 / 5.497 / 2656768, abs=1e-3)


def test_the_report_prints_misses_and_searched_systems(result, capsys):
    bench_cost_model.print_report(result)
    out = capsys.readouterr().out
    assert out.count("Miss ") == len(result["misses"])
    assert out.count("Searched, not fitted:") == len(result["searched"]) > 0


def test_the_structure_comparison_reproduces_the_shipped_model_before_it_varies_it():
    from components.mcu_size_gate import calibration
    from pipeline.bench import cost_structures

    model = calibration.build()
    errors = cost_structures.held_out(model.data, (), ())
    for core, fit in model.fits.items():
        for held in fit.held_out:
            assert errors[(core, held.model)] == pytest.approx(held.error, rel=1e-6, abs=1e-6)
    # a tie changes the held-out predictions (so the comparison varies something real)
    tied = cost_structures.held_out(model.data, (), (("fully_connected", "conv_2d"),))
    assert abs(tied[("cortex-m4", "ad")] - errors[("cortex-m4", "ad")]) > 0.1
