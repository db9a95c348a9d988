"""The size gate's decision: does a quantized model fit its boards, and is it fast enough?

Pure logic, no TFX: ``analyse`` measures a model once (arena, ops, MACs, code flash) and
judges it against each board; the executor, ``tinyml-tfx devices check`` and the run
report all use it.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any, Dict, List, Optional, Sequence

from components.mcu_size_gate import devices, kernel_flash, latency, measure
from components.tflite_quantizer import codegen, quantize

KIB = 1024.0


@dataclasses.dataclass
class TargetVerdict:
    """One board's budgets, latency and verdict; ``reasons`` has one line per failed budget."""

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


@dataclasses.dataclass
class Analysis:
    """Everything the gate measured about one model, and its verdict per board."""

    model_bytes: int
    ops: List[Dict[str, Any]]
    arena: measure.ArenaMeasurement
    macs_per_op: List[measure.OpMacs]
    code_bytes: int
    runtime_bytes: int
    kernel_bytes: Dict[str, int]
    flash_source: str
    verdicts: List[TargetVerdict]
    max_latency_ms: Optional[float]

    @property
    def macs(self) -> int:
        return latency.model_macs(self.macs_per_op)

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
            "macs_total": self.macs,
            "macs_per_op": [dataclasses.asdict(m) for m in self.macs_per_op],
            "flash": {"total_bytes": self.flash_bytes, "model_bytes": self.model_bytes,
                      "runtime_bytes": self.runtime_bytes,
                      "kernel_bytes": self.kernel_bytes, "source": self.flash_source},
            "latency_model": {"sources": list(latency.SOURCES), "kernels": "optimized (CMSIS-NN)",
                              "max_latency_ms": self.max_latency_ms},
            "targets": [dataclasses.asdict(v) for v in self.verdicts],
        }


def _kib(n: float) -> str:
    return f"{n / KIB:.1f} KiB"


def judge(model_bytes: int, arena: measure.ArenaMeasurement, budgets: Sequence[devices.Budget],
          estimates: Optional[Dict[str, latency.LatencyEstimate]] = None,
          max_latency_ms: Optional[float] = None,
          reference_estimates: Optional[Dict[str, latency.LatencyEstimate]] = None) -> List[TargetVerdict]:
    """One verdict per board, with one readable line per budget that does not fit."""
    verdicts = []
    for budget in budgets:
        board = budget.board
        reasons = []
        if budget.ram_used > board.ram_bytes:
            reasons.append(f"RAM: arena {_kib(arena.smallest_bytes)} + reserve {_kib(board.reserved_ram_bytes)} = "
                           f"{_kib(budget.ram_used)} > {_kib(board.ram_bytes)} on {board.name}")
        if not budget.arena_fits_region:
            reasons.append(f"RAM bank: arena {_kib(arena.smallest_bytes)} > largest contiguous bank "
                           f"{_kib(board.arena_region_bytes)} on {board.name}")
        if budget.flash_used > board.flash_bytes:
            reasons.append(f"Flash: model {_kib(model_bytes)} + TFLM runtime and kernels {_kib(budget.code_bytes)} "
                           f"+ reserve {_kib(board.reserved_flash_bytes)} = {_kib(budget.flash_used)} > "
                           f"{_kib(board.flash_bytes)} on {board.name}")
        estimate = (estimates or {}).get(board.name)
        if estimate and max_latency_ms is not None and estimate.ms > max_latency_ms:
            reasons.append(f"Latency: estimated {estimate.ms:.1f} ms per inference > max {max_latency_ms:g} ms "
                           f"on {board.name} ({board.core} at {board.clock_mhz:g} MHz, {estimate.calibration})")
        reference = (reference_estimates or {}).get(board.name)
        verdicts.append(TargetVerdict(
            board.name, not reasons, reasons, budget.ram_used, board.ram_bytes, budget.flash_used, board.flash_bytes,
            latency_ms=estimate.ms if estimate else None,
            inferences_per_second=estimate.inferences_per_second if estimate else None,
            latency_reference_kernels_ms=reference.ms if reference else None,
            latency_calibration=estimate.calibration if estimate else "",
            energy_uj=estimate.energy_uj if estimate else None, core=board.core, clock_mhz=board.clock_mhz))
    return verdicts


def analyse(model: bytes, targets: Sequence[devices.DeviceProfile], max_latency_ms: Optional[float] = None,
            arena: Optional[measure.ArenaMeasurement] = None,
            flash_table: Optional[kernel_flash.FlashTable] = None) -> Analysis:
    """Measures ``model`` on TFLite Micro and judges it against every board in ``targets``.

    Args:
        model: the .tflite flatbuffer.
        targets: boards, the primary one first.
        max_latency_ms: the design requirement; None reports latency without gating on it.
        arena: an arena already measured for this very model (skips the bisection).
        flash_table: the kernel flash table (default: the shipped one).

    Raises:
        codegen.UnsupportedOpError: an op without a TFLite Micro kernel.
        quantize.QuantizationError: the model does not run on TFLite Micro.
    """
    info = quantize.describe(model)
    quantize.check_tflm_ops(model, codegen.RESOLVER_METHODS)
    arena = arena or measure.measure_arena(model)
    macs_per_op = measure.count_macs(model)
    table = flash_table or kernel_flash.load_table()
    code_bytes, per_kernel = table.model_flash(op["name"] for op in info["ops"])
    macs = latency.model_macs(macs_per_op)
    verdicts = judge(len(model), arena, devices.budgets(len(model), arena.smallest_bytes, targets, code_bytes),
                     latency.table(macs, targets), max_latency_ms, latency.table(macs, targets, "reference"))
    return Analysis(len(model), info["ops"], arena, macs_per_op, code_bytes, table.runtime_bytes, per_kernel,
                    table.source, verdicts, max_latency_ms)


def _bar(used: float, total: float) -> str:
    share = min(100.0, 100.0 * used / total) if total else 100.0
    colour = "#2a9d8f" if used <= total else "#e63946"
    return (f"<div style='background:#eee;width:260px'><div style='background:{colour};width:{share:.1f}%;"
            "height:12px'></div></div>")


def report_html(analysis: Analysis, primary: str) -> str:
    """A small page with a bar per budget (used against available) per board; no scripts, no network."""
    rows = []
    for v in analysis.verdicts:
        budgets = [("RAM", v.ram_used, v.ram_total, _kib(v.ram_used), _kib(v.ram_total)),
                   ("Flash", v.flash_used, v.flash_total, _kib(v.flash_used), _kib(v.flash_total))]
        if v.latency_ms is not None:
            limit = analysis.max_latency_ms
            budgets.append(("Latency", v.latency_ms, limit if limit is not None else v.latency_ms,
                            f"{v.latency_ms:.1f} ms ({v.inferences_per_second:.1f}/s)",
                            f"{limit:g} ms" if limit is not None else "no limit"))
        for kind, used, total, used_text, total_text in budgets:
            rows.append(
                f"<tr><td>{html.escape(v.board)}{' (primary)' if v.board == primary else ''}</td><td>{kind}</td>"
                f"<td>{_bar(used, total)}</td><td>{html.escape(used_text)} / {html.escape(total_text)}</td>"
                f"<td>{'fits' if used <= total else 'over'}</td></tr>")
    reasons = "".join(f"<li>{html.escape(r)}</li>" for v in analysis.verdicts for r in v.reasons) or "<li>none</li>"
    kernels = ", ".join(f"{op} {size:,} B" for op, size in analysis.kernel_bytes.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>MCU size gate</title></head>"
        "<body style='font-family:sans-serif'><h1>MCU size gate</h1>"
        f"<p>Model {analysis.model_bytes:,} bytes; {analysis.macs:,} MACs per inference; tensor arena "
        f"{analysis.arena.smallest_bytes:,} bytes measured on TFLite Micro ({html.escape(analysis.arena.source)}); "
        "ops: " + html.escape(", ".join(f"{o['name']} v{o['version']}" for o in analysis.ops)) + ".</p>"
        f"<p>Flash = model + TFLM runtime {analysis.runtime_bytes:,} B + kernels ({html.escape(kernels)}) + the "
        f"board's reserve; code sizes: {html.escape(analysis.flash_source)}.</p>"
        "<table>" + "".join(rows) + "</table>"
        f"<h2>Why not</h2><ul>{reasons}</ul>"
        "<p>Latency: MACs x calibrated cycles per MAC (CMSIS-NN kernels) / clock; calibration: "
        + html.escape("; ".join(latency.SOURCES)) + ".</p></body></html>")
