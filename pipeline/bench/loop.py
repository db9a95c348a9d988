"""`make demo-monitoring`: the field loop end to end, on this machine.

1. Training run 1 on span 0 of a data root of spans (the config's synthetic dataset; ``data.training_spans`` 2):
   model A.
2. A simulated fleet runs A on TFLite Micro (pipeline/fleet.py); from ``--shift-day`` it rains. Each day's
   telemetry is ingested as a span and the monitoring pipeline judges it, until it blesses a retrain.
3. A field campaign in the shifted condition, labelled by the simulator's ground truth, becomes span 1
   (``tinyml-tfx fleet collect``).
4. Training run 2 on spans 0 and 1: model B. Both int8 models on TFLite Micro, per span of run 2's test
   split; the comparison goes into the monitoring report.
5. If run 2 released B to ``<board>-canary``: canary devices run B in the field for the config's canary
   window, the rest the stable version; ``promote`` to stable goes through the canary gate. If it did not
   release, the demo says which gate refused and stops there: no requirement is relaxed to finish the loop.

Everything is measured here; the figures go to WORKDIR/loop.json and the monitoring report.

Usage: python -m pipeline.bench.loop --config pipeline/configs/kws.yaml --workdir work/demo-monitoring
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any, Dict, List

from pipeline import config as config_lib, continuous, fleet, monitoring


def _ingest_and_judge(config, batch: str, log) -> Dict[str, Any]:
    from components.telemetry import ingest

    ingest.ingest(batch, monitoring.dataset_dir(config, monitoring.FIELD_DATASET), monitoring.expectations(config))
    decision = monitoring.run(config)
    log(f"  span {decision.get('field_span')}: {'RETRAIN' if decision['retrain'] else 'no retrain'}: "
        f"{decision['reason'][:140]}")
    return decision


def _canary(config, second, first, model_b: bytes, device_b, spec: fleet.FleetSpec, start_day: int,
            log) -> Dict[str, Any]:
    """Canary devices on B, the others on the stable version, in the shifted field; then promote to stable."""
    version_b = str(second.release.get("pushed_version"))
    version_a = str(first.release.get("pushed_version")) if first.release.get("pushed") else None
    m = config.monitoring
    canary_devices = max(1, spec.devices // 5)
    canary_spec = dataclasses.replace(spec, model_version=version_b, shifted_fraction=1.0, shift_day=0,
                                      devices=canary_devices)
    canary_pools = fleet.build_pools(config, model_b, canary_spec, device_b, log)
    stable_pools = None
    if version_a:
        model_a, device_a = fleet.released_model(first)
        stable_spec = dataclasses.replace(spec, model_version=version_a, shifted_fraction=1.0, shift_day=0,
                                          devices=spec.devices - canary_devices)
        stable_pools = fleet.build_pools(config, model_a, stable_spec, device_a, log)
    out = os.path.join(config.workdir, "fleet", "canary")
    for offset in range(m.canary_window_periods):
        day = start_day + offset
        _ingest_and_judge(config, fleet.day_batch(config, canary_pools, canary_spec, day, canary_devices,
                                                  os.path.join(out, f"canary-{day:03d}"), seed_tag=31), log)
        if stable_pools is not None:
            _ingest_and_judge(config, fleet.day_batch(config, stable_pools, stable_spec, day, stable_spec.devices,
                                                      os.path.join(out, f"stable-{day:03d}"), seed_tag=37), log)
    return {"canary_version": version_b, "stable_version": version_a, "canary_devices": canary_devices,
            "promote": _promote(config, log)}


def _promote(config, log) -> Dict[str, Any]:
    """``tinyml-tfx promote`` of the board's canary to stable, through the canary gate."""
    from click.testing import CliRunner

    from pipeline.ui.cli import main

    result = CliRunner().invoke(main, ["promote", "--config", config.source, "--workdir", config.workdir,
                                       "--device-class", config.target_device])
    log("   " + " ".join(result.output.split()))
    return {"exit_code": result.exit_code, "output": " ".join(result.output.split())}


def _refusals(summary) -> List[str]:
    gates = {"Evaluator": summary.blessed, "TFLiteQuantizer": summary.quantization.get("blessed"),
             "McuSizeGate": summary.size_gate.get("blessed")}
    if summary.streaming:
        gates["StreamingEvaluator"] = summary.streaming.get("blessed")
    return [f"{name}: {'refused' if blessed is False else 'did not run'}" for name, blessed in gates.items()
            if not blessed]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=config_lib.DEFAULT_CONFIG)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--days", type=int, default=6, help="Days the fleet runs model A at most.")
    parser.add_argument("--shift-day", type=int, default=3)
    parser.add_argument("--shift", default="rain")
    parser.add_argument("--reference-days", type=int, default=3)
    parser.add_argument("--campaign-minutes", type=float, default=60.0)
    parser.add_argument("--campaign-voices", type=int, default=20)
    args = parser.parse_args(argv)

    from components.telemetry import ingest
    from pipeline.runners import local as run_local
    from pipeline.tasks.common import datasets

    workdir = os.path.abspath(args.workdir)
    data_root = os.path.join(workdir, "data")
    if datasets.span_folders(data_root).keys() - {0}:
        raise SystemExit(f"{data_root} already holds field spans: this demo starts from span 0; remove {workdir}.")
    config = continuous.spans_workdir_config(args.config, workdir)
    family, log = config.family, print
    figures: Dict[str, Any] = {"config": config.source, "shift": args.shift}
    run_local.ensure_dev_signing_key(config)

    log("1. Training run 1 on span 0")
    started = time.time()
    first = run_local.run(config)
    figures["run1"] = {"run_id": first.run_id, "seconds": round(time.time() - started, 1),
                       "released": bool(first.release.get("pushed")), "refused_by": _refusals(first)}
    log(f"   {first.run_id}: eval {first.eval_accuracy:.4f}; released: {figures['run1']['released']}")
    if figures["run1"]["released"]:
        # The first release has no field telemetry to be judged on: it goes to stable (the gate says it is not applied).
        figures["run1"]["promote"] = _promote(config, log)

    log(f"2. A fleet of {args.devices} devices runs model A; {args.shift} from day {args.shift_day}")
    model_a, device_a = fleet.released_model(first)
    spec = fleet.FleetSpec(devices=args.devices, days=args.days, shift=args.shift, shift_day=args.shift_day,
                           pool_minutes=3.0, seconds_per_day=60.0,
                           model_version=str(first.release.get("pushed_version") or fleet.FleetSpec.model_version))
    pools = fleet.build_pools(config, model_a, spec, device_a, log)
    ingest.ingest(fleet.write_batch(os.path.join(workdir, "fleet", "reference"),
                                    fleet.reference_summaries(config, pools["base"], spec, args.reference_days), [], []),
                  monitoring.dataset_dir(config, monitoring.REFERENCE_DATASET), monitoring.expectations(config))
    retrain_day = None
    for day in range(args.days):
        batch = fleet.day_batch(config, pools, spec, day, spec.devices, os.path.join(workdir, "fleet", f"day-{day:03d}"))
        if _ingest_and_judge(config, batch, log)["retrain"]:
            retrain_day = day
            break
    figures["retrain_decision_day"] = retrain_day
    figures["detection_delay_days"] = None if retrain_day is None else retrain_day - args.shift_day
    if retrain_day is None:
        log("   No retrain decision: the loop stops here.")
        return _save(workdir, figures)

    log("3. Field campaign under the shift, labelled by the simulator's ground truth, as span 1")
    manifest = family.write_field_span(config, args.shift, args.campaign_minutes, args.campaign_voices, 1,
                                       os.path.join(data_root, datasets.span_folder(1)), log=log)
    figures["field_span"] = {"clips": manifest["clips"], "label_source": manifest["label_source"]}

    log("4. Training run 2 on spans 0 and 1")
    started = time.time()
    second = run_local.run(config)
    figures["run2"] = {"run_id": second.run_id, "seconds": round(time.time() - started, 1),
                       "released": bool(second.release.get("pushed")), "refused_by": _refusals(second)}
    comparison = continuous.compare_runs(config, first, second)
    continuous.record_retrain(config, comparison)
    figures["accuracy"] = comparison["accuracy"]
    for model in ("before", "after"):
        log("   " + model + ": " + ", ".join(f"{span} {row['accuracy']:.4f} ({row['examples']} clips)"
                                           for span, row in comparison["accuracy"][model].items()))

    if figures["run2"]["released"]:
        log("5. Canary: B on a fifth of the devices, then promote to stable through the canary gate")
        model_b, device_b = fleet.released_model(second)
        figures["canary"] = _canary(config, second, first, model_b, device_b, spec, retrain_day + 1, log)
    else:
        log(f"5. Run 2 released nothing ({'; '.join(figures['run2']['refused_by'])}): no canary to promote.")
    from pipeline.ui import monitoring_report

    figures["report"] = monitoring_report.write(config, os.path.join(workdir, "reports", "monitoring"))
    log(f"Monitoring report: {figures['report']}")
    return _save(workdir, figures)


def _save(workdir: str, figures: Dict[str, Any]) -> int:
    with open(os.path.join(workdir, "loop.json"), "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=2, sort_keys=True)
    print(f"Saved {os.path.join(workdir, 'loop.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
