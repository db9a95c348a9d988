"""Estimated latency (and energy) per inference on a board, for the engine tinyml-tfx ships:
TensorFlow Lite Micro with CMSIS-NN kernels.

The model's work per op class (``measure.op_work``) times the core's cycles per unit of
work (``calibration``: fitted per core on published MLPerf Tiny TFLite Micro results,
derived through other engines' cycle ratios, or a named proxy), over the board's clock.
Every estimate carries its band: the range of published / predicted latencies when each
calibration network is held out of the fit. The gate judges the upper end.

A board profile's own ``measured_op_cycles`` (TFLM's MicroProfiler on the board, see
``profile_log``) wins for the op classes it covers. Cores with none of these (Xtensa,
RISC-V, Cortex-M3) are not calibrated: no latency is invented for them. TFLM's reference
kernels have no published result on any Cortex-M core (the MLPerf Tiny v0.5 reference
submission builds with CMSIS-NN), so they are not calibrated either.

These are estimates, never measurements.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Mapping, Optional, Tuple

from components.mcu_size_gate import calibration, measure

REFERENCE_KERNELS = ("not calibrated: no published TFLite Micro result with its reference kernels exists for a "
                     "Cortex-M core (MLPerf Tiny v0.5's reference submission builds TFLM with CMSIS-NN)")


@dataclasses.dataclass(frozen=True)
class LatencyEstimate:
    """One board's estimated time (and energy) per inference, with its band and what it rests on.

    ``ms`` is None when the board's core is not calibrated; ``low_ms``/``high_ms`` are the
    band's ends; ``basis`` is ``fit``, ``derived``, ``proxy``, ``board`` or ``not calibrated``.
    """

    board: str
    core: str
    engine: str
    basis: str
    calibration: str
    points: Tuple[str, ...]
    ms: Optional[float]
    low_ms: Optional[float]
    high_ms: Optional[float]
    cycles: Optional[float]
    cycles_by_class: Dict[str, float]
    energy_uj: Optional[float] = None

    @property
    def calibrated(self) -> bool:
        return self.ms is not None

    @property
    def inferences_per_second(self) -> Optional[float]:
        return None if not self.ms else round(1000.0 / self.ms, 2)

    @property
    def band(self) -> Optional[Tuple[float, float]]:
        """The band as (low, high) relative to the estimate, e.g. (-0.42, +0.20)."""
        if not self.ms:
            return None
        return self.low_ms / self.ms - 1.0, self.high_ms / self.ms - 1.0


def _not_calibrated(board, reason: str) -> LatencyEstimate:
    engine = calibration.ENGINE if board.core.startswith("cortex-m") else "TFLite Micro with the vendor's kernels"
    return LatencyEstimate(board.name, board.core, engine, "not calibrated", reason, (), None, None, None, None, {})


def _board_cycles(board, work: Mapping[str, int], core_calibration) -> Tuple[Dict[str, float], Tuple[float, float],
                                                                            str, Tuple[str, ...]]:
    measured = board.measured_op_cycles
    used = [c for c in measure.OP_CLASSES if work.get(c)]
    missing = [c for c in used if c not in measured.cycles_per_unit]
    if missing and core_calibration is None:
        raise LookupError(missing)
    per_unit = {c: measured.cycles_per_unit.get(c) or core_calibration.cycles_per_unit[c] for c in measure.OP_CLASSES
                if c in measured.cycles_per_unit or core_calibration is not None}
    band = (1.0 - measured.spread, 1.0 + measured.spread)
    label = f"board profile: measured on {board.name} ({measured.engine}; {measured.source})"
    points: Tuple[str, ...] = (f"board:{board.name}",)
    if missing:
        band = (min(band[0], core_calibration.band[0]), max(band[1], core_calibration.band[1]))
        label += f"; {', '.join(missing)} from the published calibration: {core_calibration.label}"
        points += core_calibration.points
    return per_unit, band, label, points


def estimate(work: Mapping[str, int], board, model: calibration.CostModel) -> LatencyEstimate:
    """Latency of a model with ``work`` (op class -> work, ``measure.work_by_class``) on ``board``."""
    core_calibration = model.for_core(board.core)
    if board.measured_op_cycles is not None:
        try:
            per_unit, band, label, points = _board_cycles(board, work, core_calibration)
        except LookupError as err:
            return _not_calibrated(board, f"not calibrated: {board.name}'s measured_op_cycles lack "
                                          f"{', '.join(err.args[0])} and {board.core} has no published calibration")
        basis, engine = "board", board.measured_op_cycles.engine
    elif core_calibration is None:
        return _not_calibrated(board, f"not calibrated: no published TFLite Micro measurement for {board.core}; "
                                      "profile the model on the board and add measured_op_cycles to its profile "
                                      "(tinyml-tfx devices calibrate)")
    else:
        per_unit, band = core_calibration.cycles_per_unit, core_calibration.band
        label, points = core_calibration.label, core_calibration.points
        basis, engine = core_calibration.basis, core_calibration.engine
    by_class = {c: per_unit[c] * work[c] for c in measure.OP_CLASSES if work.get(c)}
    cycles = sum(by_class.values())
    ms = cycles / (board.clock_mhz * 1e3)
    energy = None
    if board.active_current_ma is not None and board.supply_v is not None:
        energy = round(board.active_current_ma * board.supply_v * ms, 1)  # mA x V x ms = uJ
    return LatencyEstimate(board.name, board.core, engine, basis, label, points, round(ms, 2),
                           round(ms * band[0], 2), round(ms * band[1], 2), round(cycles),
                           {c: round(v) for c, v in by_class.items()}, energy)


def table(work: Mapping[str, int], boards: Iterable, model: Optional[calibration.CostModel] = None
          ) -> Dict[str, LatencyEstimate]:
    """``estimate`` for every board, by name."""
    model = model or calibration.build()
    return {b.name: estimate(work, b, model) for b in boards}
