"""Benchmark of the default pipeline: a cold run (data generation included) and two reruns.

The first rerun re-evaluates once, because the first blessed model has become the
Evaluator's baseline; the second rerun is the steady state, answered from the cache.

Usage: ``python -m pipeline.bench --config CONFIG --workdir DIR`` (``make bench``).
DIR is emptied first. Prints wall time per component and in total, and the eval
accuracy, and writes the same figures to DIR/bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time

from pipeline import config as config_lib
from pipeline.bench import cost_model as bench_cost_model
from pipeline.bench import streaming as bench_streaming
from pipeline.runners import local as run_local


def _quantization_figures(summary) -> dict:
    q = summary.quantization
    if not q:
        return {}
    with open(os.path.join(q["uri"], "quantization_report.json")) as f:
        report = json.load(f)
    return {
        "mode": report["mode"],
        "float_accuracy": report["fidelity"]["float_accuracy"],
        "quantized_accuracy": report["fidelity"]["quantized_accuracy"],
        "accuracy_drop_points": round(100 * report["fidelity"]["accuracy_drop"], 2),
        "agreement": report["fidelity"]["agreement"],
        "tflm_tflite_disagreements": report["fidelity"]["tflm_tflite_disagreements"],
        "model_bytes": report["model_bytes"],
        "float_model_bytes": report["float_model_bytes"],
        "parameters": report["parameters"],
        "bytes_per_parameter": round(report["bytes_per_parameter"], 3),
        "conversion_seconds": report["conversion_seconds"],
        "blessed": q.get("blessed"),
    }


def _device_table(summary, max_latency_ms) -> dict:
    """The quantized model against every shipped board (the gate's own analysis), and its time."""
    from components.mcu_size_gate import devices, gate

    q = summary.quantization
    if not q:
        return {}
    with open(os.path.join(q["uri"], "model.tflite"), "rb") as f:
        model = f.read()
    start = time.time()
    analysis = gate.analyse(model, list(devices.load_catalogue().values()), max_latency_ms=max_latency_ms)
    seconds = time.time() - start
    return {"analysis_seconds_all_boards": round(seconds, 2), "model_bytes": analysis.model_bytes,
            "arena_bytes": analysis.arena.smallest_bytes, "macs": analysis.macs, "code_bytes": analysis.code_bytes,
            "rodata_bytes": analysis.rodata_bytes,
            "boards": [{"board": v.board, "core": v.core, "clock_mhz": v.clock_mhz, "flash_used": v.flash_used,
                        "flash_total": v.flash_total, "ram_used": v.ram_used, "ram_total": v.ram_total,
                        "arena_bytes": v.arena_bytes, "cmsis_nn_scratch_bytes": v.cmsis_nn_scratch_bytes,
                        "latency_ms": v.latency_ms, "latency_low_ms": v.latency_low_ms,
                        "latency_high_ms": v.latency_high_ms, "latency_basis": v.latency_basis,
                        "calibration": v.latency_calibration, "engine": v.engine, "energy_uj": v.energy_uj,
                        "fits": v.fits, "reasons": v.reasons}
                       for v in analysis.verdicts]}


def _print_device_table(devices_table: dict, max_latency_ms) -> None:
    print("| board | core, MHz | flash used / total KiB | RAM used / total KiB (arena incl. CMSIS-NN scratch) | "
          "latency ms, estimated (band) | basis | fits (RAM, flash, latency upper end "
          f"<= {max_latency_ms} ms) |")
    print("|---|---|---|---|---|---|---|")
    for b in devices_table["boards"]:
        latency = ("not calibrated" if b["latency_ms"] is None else
                   f"{b['latency_ms']:.1f} ({b['latency_low_ms']:.1f}-{b['latency_high_ms']:.1f})")
        why = "" if b["fits"] else " (" + ", ".join(r.split(":")[0] for r in b["reasons"]) + ")"
        print(f"| {b['board']} | {b['core']}, {b['clock_mhz']:g} | {b['flash_used'] / 1024:.1f} / "
              f"{b['flash_total'] / 1024:.0f} | {b['ram_used'] / 1024:.1f} / {b['ram_total'] / 1024:.0f} "
              f"({b['arena_bytes']:,} B, scratch {b['cmsis_nn_scratch_bytes']:,} B) | {latency} | "
              f"{b['latency_basis']} | {'yes' if b['fits'] else 'no'}{why} |")


def _timed_run(config):
    summary = run_local.run(config)
    return {
        "wall_seconds": round(summary.wall_seconds, 1),
        "components": {c.node_id: {"state": c.state, "seconds": round(c.seconds, 1)} for c in summary.components},
        "eval_accuracy": summary.eval_accuracy,
        "blessed": summary.blessed,
        "quantization": _quantization_figures(summary),
    }, summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=config_lib.DEFAULT_CONFIG)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)

    shutil.rmtree(args.workdir, ignore_errors=True)
    config = config_lib.load_config(args.config).with_workdir(args.workdir)
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}

    start = time.time()
    run_local.prepare_data(config)
    results["data_generation_seconds"] = round(time.time() - start, 1)
    cold, cold_summary = _timed_run(config)
    rerun, rerun_summary = _timed_run(config)
    cached, cached_summary = _timed_run(config)
    results["cold_run"] = cold
    results["first_rerun"] = rerun
    results["cached_run"] = cached
    results["cold_total_seconds"] = round(results["data_generation_seconds"] + cold["wall_seconds"], 1)

    print(f"Data generation: {results['data_generation_seconds']:.1f} s")
    print("Cold run:")
    print(cold_summary.to_text())
    print("First rerun (new baseline, so the Evaluator runs again):")
    print(rerun_summary.to_text())
    print("Second rerun (steady state):")
    print(cached_summary.to_text())
    print(f"TOTAL cold (data + pipeline): {results['cold_total_seconds']:.1f} s; first rerun: "
          f"{rerun['wall_seconds']:.1f} s; cached rerun: {cached['wall_seconds']:.1f} s; "
          f"eval accuracy: {cold['eval_accuracy']:.4f}")
    q = cold["quantization"]
    if q:
        print(f"Quantization ({q['mode']}): float accuracy {q['float_accuracy']:.4f}, {q['mode']} "
              f"{q['quantized_accuracy']:.4f}, drop {q['accuracy_drop_points']:.2f} points, agreement "
              f"{q['agreement']:.4f}, TFLM/TFLite disagreements {q['tflm_tflite_disagreements']}; "
              f"{q['model_bytes']} bytes for {q['parameters']} parameters ({q['bytes_per_parameter']:.2f} B/param; "
              f"float {q['float_model_bytes']} bytes); conversion {q['conversion_seconds']:.1f} s")
    gate_seconds = cold["components"].get("McuSizeGate", {}).get("seconds")
    devices_table = _device_table(cold_summary, config.requirements.max_latency_ms)
    results["devices"] = dict(devices_table, gate_component_seconds=gate_seconds)
    if devices_table:
        print(f"MCU size gate: component {gate_seconds} s in the cold run; analysis of all "
              f"{len(devices_table['boards'])} shipped boards {devices_table['analysis_seconds_all_boards']:.2f} s; "
              f"model {devices_table['model_bytes']} B, arena {devices_table['arena_bytes']} B, "
              f"{devices_table['macs']:,} MACs, TFLM code {devices_table['code_bytes']} B "
              f"({devices_table['rodata_bytes']} B of it read-only data)")
        _print_device_table(devices_table, config.requirements.max_latency_ms)
    results["latency_model"] = bench_cost_model.evaluate()
    bench_cost_model.print_report(results["latency_model"])
    results["streaming"] = bench_streaming.figures(cold_summary)
    print(bench_streaming.describe(results["streaming"]))
    results["streaming_state_skew"] = bench_streaming.state_skew(config, cold_summary)
    print(bench_streaming.describe_skew(results["streaming_state_skew"]))
    results["ota_pusher_component_seconds"] = cold["components"].get("OtaPusher", {}).get("seconds")
    print(f"OtaPusher (embedded OCI layout registry, signed): {results['ota_pusher_component_seconds']} s in the "
          f"cold run; release: {cold_summary.release.get('destination')}")
    with open(os.path.join(args.workdir, "bench.json"), "w") as f:
        json.dump(results, f, indent=2)
    if cold_summary.quantization and cold_summary.size_gate:
        from pipeline import pipeline as tinyml_pipeline
        from pipeline.bench import registry as bench_registry

        bench_registry.main(["--quantized", cold_summary.quantization["uri"], "--device-report",
                             cold_summary.artifact_uris[tinyml_pipeline.SIZE_GATE]["report"],
                             "--workdir", os.path.join(args.workdir, "registry_bench")])


if __name__ == "__main__":
    main()
