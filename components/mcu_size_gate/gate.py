"""The size gate's decision: does a quantized model fit its boards? Pure logic, no TFX."""

from __future__ import annotations

import dataclasses
import html
from typing import Dict, List, Sequence

from components.mcu_size_gate import devices, measure

KIB = 1024.0


@dataclasses.dataclass
class TargetVerdict:
    board: str
    fits: bool
    reasons: List[str]
    ram_used: int
    ram_total: int
    flash_used: int
    flash_total: int


def _kib(n: int) -> str:
    return f"{n / KIB:.1f} KiB"


def judge(model_bytes: int, arena: measure.ArenaMeasurement, budgets: Sequence[devices.Budget]) -> List[TargetVerdict]:
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
            reasons.append(f"Flash: model {_kib(model_bytes)} + reserve {_kib(board.reserved_flash_bytes)} = "
                           f"{_kib(budget.flash_used)} > {_kib(board.flash_bytes)} on {board.name}")
        verdicts.append(TargetVerdict(board.name, not reasons, reasons, budget.ram_used, board.ram_bytes,
                                      budget.flash_used, board.flash_bytes))
    return verdicts


def report_html(model_bytes: int, arena: measure.ArenaMeasurement, macs: int, ops: Sequence[Dict],
                verdicts: Sequence[TargetVerdict], primary: str) -> str:
    """A small page with a bar per budget (used against available) per board; no scripts, no network."""
    rows = []
    for v in verdicts:
        for kind, used, total in (("RAM", v.ram_used, v.ram_total), ("Flash", v.flash_used, v.flash_total)):
            share = min(100.0, 100.0 * used / total)
            colour = "#2a9d8f" if used <= total else "#e63946"
            rows.append(
                f"<tr><td>{html.escape(v.board)}{' (primary)' if v.board == primary else ''}</td><td>{kind}</td>"
                f"<td><div style='background:#eee;width:300px'><div style='background:{colour};width:{share:.1f}%;"
                f"height:12px'></div></div></td><td>{_kib(used)} / {_kib(total)}</td>"
                f"<td>{'fits' if used <= total else 'over'}</td></tr>")
    reasons = "".join(f"<li>{html.escape(r)}</li>" for v in verdicts for r in v.reasons) or "<li>none</li>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>MCU size gate</title></head>"
        "<body style='font-family:sans-serif'><h1>MCU size gate</h1>"
        f"<p>Model {model_bytes:,} bytes; {macs:,} MACs per inference; tensor arena {arena.smallest_bytes:,} bytes "
        f"measured on TFLite Micro ({html.escape(arena.source)}); ops: "
        + html.escape(", ".join(f"{o['name']} v{o['version']}" for o in ops)) + ".</p>"
        "<table>" + "".join(rows) + "</table>"
        f"<h2>Why not</h2><ul>{reasons}</ul>"
        "<p>Flash counts the model and the board's reserve; the TFLite Micro runtime and kernels are not yet "
        "counted.</p></body></html>")
