"""How well the size gate's latency model predicts published TFLite Micro results.

For every published (model, board) pair the calibration uses: the published latency, the
estimate of the fit on all four MLPerf Tiny models (the calibration points themselves) and
the leave-one-model-out estimate (fitted on the other three models, so the model is new to
it), with their relative errors. Then the derived cores' cycle ratios and, for context,
other engines' published figures on a fitted core.

Usage: ``python -m pipeline.bench.cost_model [--json FILE]``; ``make bench`` prints it too.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, Optional, Sequence

from components.mcu_size_gate import calibration

TARGET = 0.30


def evaluate(model: Optional[calibration.CostModel] = None) -> Dict[str, Any]:
    """The table's figures: per fitted core and model, published, fitted and held-out latencies."""
    model = model or calibration.build()
    rows = []
    for core, fit in model.fits.items():
        for held in fit.held_out:
            fitted = fit.fitted_ms[held.model]
            rows.append({"core": core, "system": fit.system.id, "board": fit.system.board,
                         "clock_mhz": fit.system.clock_mhz, "model": held.model,
                         "published_ms": round(held.published_ms, 3), "fitted_ms": round(fitted, 3),
                         "fitted_error": round(fitted / held.published_ms - 1, 4),
                         "held_out_ms": round(held.predicted_ms, 3), "held_out_error": round(held.error, 4),
                         "source": fit.system.results[held.model].source})
    within = [r for r in rows if abs(r["held_out_error"]) <= TARGET]
    derived = {core: {"label": c.label, "band": [round(b, 3) for b in c.band]}
               for core, c in model.cores.items() if c.basis in ("derived", "proxy")}
    comparison = []
    for system in model.data.comparison:
        fit = model.fits.get(system.core)
        for name, result in system.results.items():
            tflm = fit.system.results.get(name) if fit else None
            comparison.append({"system": system.id, "engine": system.engine, "model": name,
                               "published_ms": round(result.latency_ms, 3),
                               "tflm_published_ms": round(tflm.latency_ms * fit.system.clock_mhz / system.clock_mhz, 3)
                               if tflm else None, "tflm_system": fit.system.id if tflm else None})
    misses = []
    for r in rows:
        if abs(r["held_out_error"]) > TARGET:
            fitted = [m for m in model.fits[r["core"]].system.results if m != r["model"]]
            cov = calibration.coverage(model.data, r["model"], fitted)
            misses.append({"core": r["core"], "model": r["model"], "held_out_error": r["held_out_error"],
                           "op_class": cov.op_class, "share": round(cov.share, 4), "depth": round(cov.depth, 1),
                           "fitted_share": {m: round(v, 5) for m, v in cov.fitted_share.items()},
                           "fitted_depth": {m: round(v, 1) for m, v in cov.fitted_depth.items()}})
    cycles_per_mac = {core: {m: round(r.cycles / sum(model.data.work[m][c] for c in calibration.MAC_CLASSES), 3)
                             for m, r in fit.system.results.items()} for core, fit in model.fits.items()}
    searched = [{"round": e.round, "system": e.system, "reason": e.reason, "source": e.source}
                for e in model.data.searched]
    return {"rows": rows, "held_out_within_target": len(within), "pairs": len(rows), "target": TARGET,
            "misses": misses, "published_cycles_per_mac": cycles_per_mac, "searched": searched,
            "worst_held_out": max(rows, key=lambda r: abs(r["held_out_error"])) if rows else None,
            "bands": {core: [round(b, 3) for b in fit.band] for core, fit in model.fits.items()},
            "derived": derived, "comparison": comparison}


def print_report(result: Dict[str, Any]) -> None:
    """Prints the tables as markdown (they go into the README as they are)."""
    print("Latency model against published MLPerf Tiny TFLite Micro + CMSIS-NN results (estimated vs published):")
    print("| core | board, MHz | model | published ms | fit on all 4: ms (error) | held out: ms (error) |")
    print("|---|---|---|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['core']} | {r['board']}, {r['clock_mhz']:g} | {r['model']} | {r['published_ms']:.2f} | "
              f"{r['fitted_ms']:.2f} ({r['fitted_error']:+.0%}) | {r['held_out_ms']:.2f} ({r['held_out_error']:+.0%}) |")
    worst = result["worst_held_out"]
    print(f"Held out within +/-{result['target']:.0%}: {result['held_out_within_target']} of {result['pairs']}; "
          f"worst {worst['model']} on {worst['core']} {worst['held_out_error']:+.0%}. Bands (published / estimated): "
          + ", ".join(f"{core} x{lo:.2f}-x{hi:.2f}" for core, (lo, hi) in result["bands"].items()))
    print("Published cycles per MAC (published cycles / the model's MACs): " + "; ".join(
        f"{core} " + ", ".join(f"{m} {v:.2f}" for m, v in per.items()) for core, per in result["published_cycles_per_mac"].items()))
    for miss in result["misses"]:
        fitted = ", ".join(f"{m} {share:.2%}" + (f" (depth {miss['fitted_depth'][m]:.0f})" if m in miss["fitted_depth"] else "")
                           for m, share in miss["fitted_share"].items())
        print(f"Miss {miss['model']} on {miss['core']} ({miss['held_out_error']:+.0%}): {miss['op_class']} is "
              f"{miss['share']:.0%} of its MACs (reduction depth {miss['depth']:.0f}); in the networks it is fitted on: {fitted}")
    for e in result["searched"]:
        print(f"Searched, not fitted: {e['round']} {e['system']}: {e['reason']}")
    for core, d in result["derived"].items():
        print(f"{core}: {d['label']} (band x{d['band'][0]:.2f}-x{d['band'][1]:.2f})")
    for c in result["comparison"]:
        tflm = (f" vs TFLite Micro + CMSIS-NN {c['tflm_published_ms']:.2f} ms ({c['tflm_system']}, published)"
                if c["tflm_published_ms"] is not None else "")
        print(f"Comparison, not fitted: {c['system']} ({c['engine']}) {c['model']} {c['published_ms']:.2f} ms{tflm}")


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = evaluate()
    print_report(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
