"""pipeline/bench/growth.py: the fitted growth exponent of a cost."""

import pytest

from pipeline.bench import growth


@pytest.mark.parametrize("exponent", [0.0, 0.5, 1.0, 1.3, 2.0])
def test_recovers_the_exponent_of_a_power_law(exponent):
    sizes = [7_680, 76_800, 230_400, 768_000]
    fit = growth.fit_exponent(sizes, [3.5 * n ** exponent for n in sizes])
    assert fit.exponent == pytest.approx(exponent, abs=1e-9)
    assert fit.points == 4
    assert fit.r_squared is None if exponent == 0.0 else fit.r_squared == pytest.approx(1.0)


def test_a_fixed_cost_pulls_the_exponent_below_one_and_lowers_the_fit():
    sizes = [1_000, 10_000, 100_000]
    fit = growth.fit_exponent(sizes, [20.0 + 0.001 * n for n in sizes])   # 20 s start-up, then linear
    assert 0.3 < fit.exponent < 0.9
    assert fit.r_squared < 0.99


def test_two_points_give_the_slope_between_them():
    assert growth.fit_exponent([100, 1000], [2.0, 40.0]).exponent == pytest.approx(1.30103, abs=1e-5)


@pytest.mark.parametrize("sizes, values, message", [
    ([100], [1.0], "two sizes"),
    ([100, 200], [1.0], "one value per size"),
    ([100, 100], [1.0, 2.0], "All sizes are equal"),
    ([100, 0], [1.0, 2.0], "positive"),
    ([100, 200], [1.0, 0.0], "positive"),
])
def test_refuses_what_cannot_be_fitted(sizes, values, message):
    with pytest.raises(ValueError, match=message):
        growth.fit_exponent(sizes, values)
