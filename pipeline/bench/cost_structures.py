"""Alternative structures for the latency model, judged by leave-one-model-out, none of them shipped.

Each alternative keeps the shipped model's per-class costs (``calibration.fit_cycles``: ridge
toward the core's common cost) and either adds a term with its own free coefficient
(cycles per output element of the multiply-accumulate ops, per im2col element, per operator,
per weight byte) or ties op classes to one cost where CMSIS-NN runs them through the same
inner loop. This compares structures on the held-out errors, i.e. model selection on the
test set: it documents why none was adopted (calibration.py's module doc), it is not a fit.

Usage: ``python -m pipeline.bench.cost_structures``.
"""

from __future__ import annotations

import math
import os
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
from scipy import optimize

from components.mcu_size_gate import calibration, measure
from components.tflm import model as tflm_model

TARGET = 0.30
EXTRA = ("mac_outputs", "im2col", "operators", "weight_bytes")
STRUCTURES: Tuple[Tuple[str, Tuple[str, ...], Tuple[Tuple[str, ...], ...]], ...] = (
    ("shipped: per-class costs, ridge to the common cost", (), ()),
    ("+ free cost per output element of MAC ops (requantisation)", ("mac_outputs",), ()),
    ("+ free cost per im2col element", ("im2col",), ()),
    ("+ free cost per operator", ("operators",), ()),
    ("+ free cost per weight byte", ("weight_bytes",), ()),
    ("fully connected tied to im2col convolution", (), (("fully_connected", "conv_2d"),)),
    ("fully connected tied to 1x1 convolution", (), (("fully_connected", "conv_2d_1x1"),)),
    ("im2col tied to 1x1 convolution (one matrix kernel on Helium)", (), (("conv_2d", "conv_2d_1x1"),)),
    ("all MAC classes tied", (), (calibration.MAC_CLASSES,)),
)


def features(data: calibration.CalibrationData) -> Dict[str, Dict[str, float]]:
    """Per model: the work per op class plus the extra terms' units."""
    result = {}
    for name, model in data.models.items():
        with open(os.path.join(calibration.MODELS_DIR, model["file"]), "rb") as f:
            operators = tflm_model.operators(f.read())
        row = {c: float(v) for c, v in data.work[name].items()}
        row.update({e: 0.0 for e in EXTRA})
        for operator in operators:
            item = measure.classify(operator)
            row["operators"] += 1
            if item.op_class in calibration.MAC_CLASSES:
                row["mac_outputs"] += operator.outputs[0].elements
                row["weight_bytes"] += operator.inputs[1].elements
            if item.op_class == "conv_2d":
                row["im2col"] += item.work / operator.inputs[1].shape[0]
        result[name] = row
    return result


def _columns(row: Mapping[str, float], ties: Sequence[Sequence[str]]) -> Dict[str, float]:
    tied = {c for group in ties for c in group}
    columns = {c: row[c] for c in measure.OP_CLASSES if c not in tied}
    columns.update({"+".join(group): sum(row[c] for c in group) for group in ties})
    return columns


def fit(rows: Mapping[str, Mapping[str, float]], cycles: Mapping[str, float], extra: Sequence[str],
        ties: Sequence[Sequence[str]], ridge: float = calibration.RIDGE) -> Dict[str, float]:
    """Cycles per unit: ridge-penalised per-class costs as in ``calibration.fit_cycles``, extra terms free."""
    models = sorted(cycles)
    names = list(_columns(rows[models[0]], ties))
    a = np.array([[_columns(rows[m], ties)[c] for c in names] for m in models])
    e = np.array([[rows[m][x] for x in extra] for m in models]).reshape(len(models), len(extra))
    y = np.array([cycles[m] for m in models])
    start = math.log(float(np.mean(y / a.sum(axis=1))))
    n = len(names)

    def residuals(p):
        total = a @ np.exp(p[0] + p[1:n + 1]) + e @ np.exp(p[n + 1:])
        return np.concatenate([np.log(total / y), math.sqrt(ridge) * p[1:n + 1]])

    x0 = np.concatenate([[start], np.zeros(n), np.full(len(extra), start)])
    p = optimize.least_squares(residuals, x0, xtol=1e-12, ftol=1e-12, gtol=1e-12).x
    return {**dict(zip(names, np.exp(p[0] + p[1:n + 1]))), **dict(zip(extra, np.exp(p[n + 1:])))}


def held_out(data: calibration.CalibrationData, extra: Sequence[str], ties: Sequence[Sequence[str]]
             ) -> Dict[Tuple[str, str], float]:
    """(core, model) -> held-out error, each model fitted on the core's other three."""
    rows = features(data)
    errors = {}
    for system in data.fit:
        cycles = {m: r.cycles for m, r in system.results.items()}
        for model in sorted(cycles):
            k = fit(rows, {m: c for m, c in cycles.items() if m != model}, extra, ties)
            row = {**_columns(rows[model], ties), **{x: rows[model][x] for x in extra}}
            errors[(system.core, model)] = sum(k[c] * v for c, v in row.items()) / cycles[model] - 1
    return errors


def main() -> List[Dict[str, object]]:
    data = calibration.load()
    results = []
    print("Alternative latency-model structures, leave-one-model-out (estimated vs published; "
          "a comparison on the held-out errors, none shipped):")
    print("| structure | within +/-30% | m4 ad | m85 ad | m85 ic | others beyond +/-30% |")
    print("|---|---|---|---|---|---|")
    for label, extra, ties in STRUCTURES:
        errors = held_out(data, extra, ties)
        within = sum(abs(v) <= TARGET for v in errors.values())
        named = [("cortex-m4", "ad"), ("cortex-m85", "ad"), ("cortex-m85", "ic")]
        others = ", ".join(f"{m} on {c} {v:+.0%}" for (c, m), v in errors.items()
                           if (c, m) not in named and abs(v) > TARGET) or "none"
        print(f"| {label} | {within} of {len(errors)} | " + " | ".join(f"{errors[k]:+.0%}" for k in named)
              + f" | {others} |")
        results.append({"structure": label, "within": within, "errors": {f"{c}/{m}": round(v, 4)
                                                                         for (c, m), v in errors.items()}})
    return results


if __name__ == "__main__":
    main()
