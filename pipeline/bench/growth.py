"""How a cost grows with the data: the exponent of a power law fitted to measurements.

A component whose time is ``a * n**k`` for ``n`` examples has growth exponent ``k``:
1 is linear, 2 quadratic, 0 flat. Fixed costs (start-up, model export) pull the fitted
exponent below 1 at small scales, so a measured exponent above the target is a real
super-linear cost, and one below 1 can hide one that only shows at larger scales.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence


@dataclasses.dataclass(frozen=True)
class Fit:
    """A least-squares line through ``(log n, log value)``."""

    exponent: float
    points: int
    r_squared: Optional[float]   # None when the values do not vary (a perfect flat fit)


def fit_exponent(sizes: Sequence[float], values: Sequence[float]) -> Fit:
    """Fits ``value = a * size**k`` by least squares in log-log space.

    Args:
        sizes: the data sizes (e.g. examples), at least two different ones, all positive.
        values: the measured cost at each size (seconds, bytes), all positive.

    Raises:
        ValueError: on fewer than two points, unequal lengths, a size or value that is not
            positive, or sizes that are all equal.
    """
    if len(sizes) != len(values):
        raise ValueError(f"{len(sizes)} sizes but {len(values)} values: give one value per size.")
    if len(sizes) < 2:
        raise ValueError("A growth exponent needs measurements at two sizes at least.")
    if any(not (s > 0) for s in sizes) or any(not (v > 0) for v in values):
        raise ValueError(f"Sizes and values must be positive to fit a power law: {list(sizes)}, {list(values)}.")
    xs = [math.log(s) for s in sizes]
    ys = [math.log(v) for v in values]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError(f"All sizes are equal ({sizes[0]}): nothing to fit a growth on.")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    syy = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - (mean_y + slope * (x - mean_x))) ** 2 for x, y in zip(xs, ys))
    return Fit(exponent=slope, points=len(xs), r_squared=None if syy == 0 else 1 - residual / syy)
