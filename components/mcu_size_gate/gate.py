"""The size gate's decision: does a quantized model fit its boards, and is it fast enough?

Pure logic, no TFX: ``analyse`` measures a model once (arena on TFLite Micro, the CMSIS-NN
scratch each board's build adds, ops, work per op class, code flash) and judges it
against each board; the executor, ``tinyml-tfx devices check`` and the run report all use it.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any, Dict, List, Optional, Sequence

from components.mcu_size_gate import calibration, devices, kernel_flash, latency, measure, scratch
from components.tflm import arena as tflm_arena, model as tflm_model, ops as tflm_ops

KIB = 1024.0


@dataclasses.dataclass
class TargetVerdict:
    """One board's budgets, latency and verdict; ``reasons`` has one line per failed budget.

    ``arena_bytes`` is the arena for the kernels this board's build runs: the measured
    reference-kernel arena plus ``cmsis_nn_scratch_bytes``. Latency figures are estimates
    (``latency_basis``, ``latency_calibration``); the verdict judges ``latency_high_ms``.
    """

    board: str
    fits: bool
    reasons: List[str]
    ram_used: int
    ram_total: int
    flash_used: int
    flash_total: int
    latency_ms: Optional[float] = None
    inferences_per_second: Optional[float] = None
    latency_reference_kernels_ms: Optional[float] = None
    latency_calibration: str = ""
    energy_uj: Optional[float] = None
    core: str = ""
    clock_mhz: float = 0.0
    engine: str = ""
    latency_low_ms: Optional[float] = None
    latency_high_ms: Optional[float] = None
    latency_basis: str = ""
    calibration_points: List[str] = dataclasses.field(default_factory=list)
    reference_kernels: str = latency.REFERENCE_KERNELS
    arena_bytes: int = 0
    cmsis_nn_scratch_bytes: int = 0
    kernels: str = ""


@dataclasses.dataclass
class Analysis:
    """Everything the gate measured about one model, and its verdict per board."""

    model_bytes: int
    ops: List[Dict[str, Any]]
    arena: tflm_arena.ArenaMeasurement
    macs_per_op: List[measure.OpMacs]
    code_bytes: int
    runtime_bytes: int
    kernel_bytes: Dict[str, int]
    flash_source: str
    verdicts: List[TargetVerdict]
    max_latency_ms: Optional[float]
    rodata_bytes: int = 0
    op_work: List[measure.OpWork] = dataclasses.field(default_factory=list)
    scratch: Dict[str, scratch.ScratchArena] = dataclasses.field(default_factory=dict)
    cost_model: Optional[calibration.CostModel] = None

    @property
    def macs(self) -> int:
        return measure.model_macs(self.macs_per_op)

    @property
    def work(self) -> Dict[str, int]:
        return measure.work_by_class(self.op_work)

    @property
    def flash_bytes(self) -> int:
        """Model + TFLM runtime and kernels: the flash the model takes, before any board's reserve."""
        return self.model_bytes + self.code_bytes

    def to_json(self, primary: str) -> Dict[str, Any]:
        return {
            "primary_target": primary,
            "model_bytes": self.model_bytes,
            "ops": self.ops,
            "arena": dataclasses.asdict(self.arena),
            "cmsis_nn_scratch": {variant: _scratch_json(a) for variant, a in self.scratch.items()},
            "macs_total": self.macs,
            "macs_per_op": [dataclasses.asdict(m) for m in self.macs_per_op],
            "work_per_op": [dataclasses.asdict(w) for w in self.op_work],
            "work_by_class": self.work,
            "flash": {"total_bytes": self.flash_bytes, "model_bytes": self.model_bytes,
                      "runtime_bytes": self.runtime_bytes, "read_only_data_bytes": self.rodata_bytes,
                      "kernel_bytes": self.kernel_bytes, "source": self.flash_source},
            "latency_model": _latency_model_json(self.cost_model, self.max_latency_ms),
            "targets": [dataclasses.asdict(v) for v in self.verdicts],
        }


def _scratch_json(arena: scratch.ScratchArena) -> Dict[str, Any]:
    return {"arena_bytes": arena.arena_bytes, "added_bytes": arena.added_bytes, "method": arena.method,
            "unmodelled_ops": list(arena.unmodelled_ops), "per_op": [dataclasses.asdict(s) for s in arena.scratch]}


def _latency_model_json(model: Optional[calibration.CostModel], max_latency_ms: Optional[float]) -> Dict[str, Any]:
    if model is None:
        return {"max_latency_ms": max_latency_ms}
    fits = [{"system": f.system.id, "board": f.system.board, "core": f.system.core, "clock_mhz": f.system.clock_mhz,
             "engine": f.system.engine, "evidence": list(f.system.evidence),
             "cycles_per_unit": {c: round(k, 4) for c, k in f.cycles_per_unit.items()},
             "band": [round(b, 4) for b in f.band],
             "results": {h.model: {"published_ms": round(h.published_ms, 3),
                                   "fitted_ms": round(f.fitted_ms[h.model], 3),
                                   "held_out_ms": round(h.predicted_ms, 3), "held_out_error": round(h.error, 4),
                                   "source": f.system.results[h.model].source} for h in f.held_out}}
            for f in model.fits.values()]
    return {
        "engine": calibration.ENGINE,
        "method": "cycles = sum over op classes of fitted cycles per unit of work; least squares per core on "
                  "published MLPerf Tiny TFLite Micro results (components/mcu_size_gate/calibration.py); band from "
                  "leave-one-model-out; the verdict judges the band's upper end",
        "op_classes": dict(measure.WORK_UNITS),
        "ridge": calibration.RIDGE,
        "cores": {core: {"basis": c.basis, "engine": c.engine, "band": [round(b, 4) for b in c.band],
                         "calibration": c.label, "points": list(c.points),
                         "cycles_per_unit": {k: round(v, 4) for k, v in c.cycles_per_unit.items()}}
                  for core, c in sorted(model.cores.items())},
        "fits": fits,
        "sources": sorted({r.source for f in model.fits.values() for r in f.system.results.values()}),
        "reference_kernels": latency.REFERENCE_KERNELS,
        "max_latency_ms": max_latency_ms,
    }


def _kib(n: float) -> str:
    return f"{n / KIB:.1f} KiB"


def _latency_reason(board, estimate: latency.LatencyEstimate, max_latency_ms: float) -> Optional[str]:
    if not estimate.calibrated:
        return (f"Latency: not calibrated for {board.core} on {board.name}, so the requirement of "
                f"{max_latency_ms:g} ms cannot be checked ({estimate.calibration})")
    if estimate.high_ms > max_latency_ms:
        return (f"Latency: estimated {estimate.ms:.1f} ms per inference, up to {estimate.high_ms:.1f} ms within its "
                f"band (the upper end is judged) > max {max_latency_ms:g} ms on {board.name} ({board.core} at "
                f"{board.clock_mhz:g} MHz, {estimate.calibration})")
    return None


def judge(model_bytes: int, arena: tflm_arena.ArenaMeasurement, budgets: Sequence[devices.Budget],
          estimates: Optional[Dict[str, latency.LatencyEstimate]] = None, max_latency_ms: Optional[float] = None,
          kernels_by_board: Optional[Dict[str, str]] = None) -> List[TargetVerdict]:
    """One verdict per board, with one readable line per budget that does not fit."""
    verdicts = []
    for budget in budgets:
        board = budget.board
        reasons = []
        arena_bytes = budget.arena_bytes or arena.smallest_bytes
        added = arena_bytes - arena.smallest_bytes
        arena_text = _kib(arena_bytes) + (f" (measured {_kib(arena.smallest_bytes)} + CMSIS-NN scratch "
                                          f"{_kib(added)})" if added else "")
        if budget.ram_used > board.ram_bytes:
            reasons.append(f"RAM: arena {arena_text} + reserve {_kib(board.reserved_ram_bytes)} = "
                           f"{_kib(budget.ram_used)} > {_kib(board.ram_bytes)} on {board.name}")
        if not budget.arena_fits_region:
            reasons.append(f"RAM bank: arena {arena_text} > largest contiguous bank "
                           f"{_kib(board.arena_region_bytes)} on {board.name}")
        if budget.flash_used > board.flash_bytes:
            reasons.append(f"Flash: model {_kib(model_bytes)} + TFLM runtime and kernels {_kib(budget.code_bytes)} "
                           f"+ reserve {_kib(board.reserved_flash_bytes)} = {_kib(budget.flash_used)} > "
                           f"{_kib(board.flash_bytes)} on {board.name}")
        estimate = (estimates or {}).get(board.name)
        if estimate is not None and max_latency_ms is not None:
            reason = _latency_reason(board, estimate, max_latency_ms)
            if reason:
                reasons.append(reason)
        verdicts.append(TargetVerdict(
            board.name, not reasons, reasons, budget.ram_used, board.ram_bytes, budget.flash_used, board.flash_bytes,
            latency_ms=estimate.ms if estimate else None,
            inferences_per_second=estimate.inferences_per_second if estimate else None,
            latency_calibration=estimate.calibration if estimate else "",
            energy_uj=estimate.energy_uj if estimate else None, core=board.core, clock_mhz=board.clock_mhz,
            engine=estimate.engine if estimate else "",
            latency_low_ms=estimate.low_ms if estimate else None,
            latency_high_ms=estimate.high_ms if estimate else None,
            latency_basis=estimate.basis if estimate else "",
            calibration_points=list(estimate.points) if estimate else [],
            arena_bytes=arena_bytes, cmsis_nn_scratch_bytes=added,
            kernels=(kernels_by_board or {}).get(board.name, "")))
    return verdicts


def _kernels(core: str, arenas: Dict[str, scratch.ScratchArena]) -> str:
    variant = scratch.VARIANT_BY_CORE.get(core)
    if variant is None:
        return "not CMSIS-NN (the vendor's kernels; their scratch buffers are not modelled)"
    text = {"dsp": "CMSIS-NN, DSP extension", "mve": "CMSIS-NN, Helium (MVE)", "plain": "CMSIS-NN, plain C"}[variant]
    unmodelled = arenas[variant].unmodelled_ops
    return text + (f" (scratch of {', '.join(unmodelled)} not modelled)" if unmodelled else "")


def estimate_latency(model: bytes, target: devices.DeviceProfile, max_latency_ms: Optional[float] = None,
                     cost_model: Optional[calibration.CostModel] = None):
    """The latency estimate alone, from the flatbuffer's shapes, and the reason it breaks ``max_latency_ms``
    (None when it does not): no arena measurement, so a search can turn a slow candidate away cheaply.

    Returns:
        (``latency.LatencyEstimate``, reason or None)
    """
    work = measure.work_by_class(measure.op_work(tflm_model.operators(model)))
    estimate = latency.estimate(work, target, cost_model or calibration.build())
    reason = _latency_reason(target, estimate, max_latency_ms) if max_latency_ms is not None else None
    return estimate, reason


def analyse(model: bytes, targets: Sequence[devices.DeviceProfile], max_latency_ms: Optional[float] = None,
            arena: Optional[tflm_arena.ArenaMeasurement] = None,
            flash_table: Optional[kernel_flash.FlashTable] = None,
            cost_model: Optional[calibration.CostModel] = None) -> Analysis:
    """Measures ``model`` on TFLite Micro and judges it against every board in ``targets``.

    Args:
        model: the .tflite flatbuffer.
        targets: boards, the primary one first.
        max_latency_ms: the design requirement; None reports latency without gating on it.
        arena: an arena already measured for this very model (skips the bisection).
        flash_table: the kernel flash table (default: the shipped one).
        cost_model: the latency calibration (default: fitted on the shipped published results).

    Raises:
        components.tflm.ops.UnsupportedOpError: an op without a TFLite Micro kernel.
        components.tflm.TflmError: the file is not a TFLite model, or it does not run on TFLite Micro.
        components.mcu_size_gate.calibration.CalibrationError: the shipped calibration data are damaged.
    """
    info = tflm_model.describe(model)
    tflm_ops.check_supported(info["ops"])
    arena = arena or tflm_arena.measure_arena(model)
    operators = tflm_model.operators(model)
    macs_per_op = measure.macs_of(operators)
    work_items = measure.op_work(operators)
    work = measure.work_by_class(work_items)
    table = flash_table or kernel_flash.load_table()
    op_names = [op["name"] for op in info["ops"]]
    code_bytes, per_kernel = table.model_flash(op_names)
    variants = sorted({scratch.VARIANT_BY_CORE[t.core] for t in targets if t.core in scratch.VARIANT_BY_CORE})
    arenas = {v: scratch.cmsis_nn_arena(model, arena.smallest_bytes, arena.recorded_head, v, operators)
              for v in variants}
    arena_by_board = {t.name: arenas[scratch.VARIANT_BY_CORE[t.core]].arena_bytes for t in targets
                      if t.core in scratch.VARIANT_BY_CORE}
    cost_model = cost_model or calibration.build()
    estimates = latency.table(work, targets, cost_model)
    budgets = devices.budgets(len(model), arena.smallest_bytes, targets, code_bytes, arena_by_board)
    verdicts = judge(len(model), arena, budgets, estimates, max_latency_ms,
                     {t.name: _kernels(t.core, arenas) for t in targets})
    return Analysis(len(model), info["ops"], arena, macs_per_op, code_bytes, table.runtime_bytes, per_kernel,
                    table.source, verdicts, max_latency_ms, table.model_rodata(op_names), work_items, arenas,
                    cost_model)


def _bar(used: float, total: float) -> str:
    share = min(100.0, 100.0 * used / total) if total else 100.0
    colour = "#2a9d8f" if used <= total else "#e63946"
    return (f"<div style='background:#eee;width:260px'><div style='background:{colour};width:{share:.1f}%;"
            "height:12px'></div></div>")


def _latency_row(v: TargetVerdict, limit: Optional[float]):
    if v.latency_ms is None:
        return ("Latency (estimated)", 0, 1, "not calibrated", f"{limit:g} ms" if limit is not None else "no limit",
                "unknown" if limit is not None else "")
    judged = v.latency_high_ms
    return ("Latency (estimated)", judged, limit if limit is not None else judged,
            f"{v.latency_ms:.1f} ms, band {v.latency_low_ms:.1f}-{v.latency_high_ms:.1f} ms "
            f"({v.inferences_per_second:.1f}/s)", f"{limit:g} ms" if limit is not None else "no limit",
            ("fits" if judged <= limit else "over") if limit is not None else "")


def report_html(analysis: Analysis, primary: str) -> str:
    """A small page with a bar per budget (used against available) per board; no scripts, no network."""
    rows = []
    for v in analysis.verdicts:
        budgets = [("RAM", v.ram_used, v.ram_total, _kib(v.ram_used), _kib(v.ram_total), None),
                   ("Flash", v.flash_used, v.flash_total, _kib(v.flash_used), _kib(v.flash_total), None),
                   _latency_row(v, analysis.max_latency_ms)]
        for kind, used, total, used_text, total_text, verdict in budgets:
            verdict = verdict if verdict is not None else ("fits" if used <= total else "over")
            rows.append(
                f"<tr><td>{html.escape(v.board)}{' (primary)' if v.board == primary else ''}</td><td>{kind}</td>"
                f"<td>{_bar(used, total)}</td><td>{html.escape(used_text)} / {html.escape(total_text)}</td>"
                f"<td>{verdict}</td></tr>")
    reasons = "".join(f"<li>{html.escape(r)}</li>" for v in analysis.verdicts for r in v.reasons) or "<li>none</li>"
    kernels = ", ".join(f"{op} {size:,} B" for op, size in analysis.kernel_bytes.items())
    calibrations = "".join(
        f"<li>{html.escape(v.board)} ({html.escape(v.core)}, {v.clock_mhz:g} MHz; RAM for {html.escape(v.kernels)}: "
        f"arena {v.arena_bytes:,} B incl. {v.cmsis_nn_scratch_bytes:,} B scratch): {html.escape(v.engine)}; "
        f"{html.escape(v.latency_calibration)}</li>" for v in analysis.verdicts)
    scratch_notes = "".join(f"<li>{html.escape(variant)}: +{a.added_bytes:,} B ({html.escape(a.method)})</li>"
                            for variant, a in analysis.scratch.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>MCU size gate</title></head>"
        "<body style='font-family:sans-serif'><h1>MCU size gate</h1>"
        f"<p>Model {analysis.model_bytes:,} bytes; {analysis.macs:,} MACs per inference; tensor arena "
        f"{analysis.arena.smallest_bytes:,} bytes measured on TFLite Micro ({html.escape(analysis.arena.source)}); "
        "ops: " + html.escape(", ".join(f"{o['name']} v{o['version']}" for o in analysis.ops)) + ".</p>"
        f"<p>Flash = model + TFLM runtime {analysis.runtime_bytes:,} B + kernels ({html.escape(kernels)}), including "
        f"{analysis.rodata_bytes:,} B of read-only data, + the board's reserve; code sizes: "
        f"{html.escape(analysis.flash_source)}.</p>"
        f"<p>CMSIS-NN scratch added to the measured arena:</p><ul>{scratch_notes or '<li>none</li>'}</ul>"
        "<table>" + "".join(rows) + "</table>"
        f"<h2>Why not</h2><ul>{reasons}</ul>"
        f"<h2>Latency estimates (not measurements)</h2><ul>{calibrations}</ul>"
        f"<p>TFLM reference kernels: {html.escape(latency.REFERENCE_KERNELS)}.</p></body></html>")
