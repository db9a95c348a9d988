"""`make bench-monitoring`: how fast the monitoring detects a field shift, whether it alarms without one,
and what one monitoring run costs per 1,000 devices' daily telemetry.

Steps (all measured on this machine, printed as a table and saved to WORKDIR/monitoring.json):

1. The released model: a local run of the config's pipeline (TFX's cache answers a repeated run).
2. Two fleets of the same size, length and seed on that model (pipeline/fleet.py): one without a shift,
   one with the shift from ``--shift-day``. For each, the reference (other devices, no shift) and every
   day are ingested as spans and the monitoring pipeline runs after each day.
   *Detection delay*: days from the shift day to the first retrain decision. *False alarms*: retrain
   decisions in the no-shift fleet (and before the shift day in the other), target none.
3. One day of ``--timing-devices`` devices (default 1,000) from the same pools: ingestion and one
   monitoring run, wall time.

Usage: python -m pipeline.bench.monitoring --config pipeline/configs/kws.yaml --workdir work/bench-monitoring
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from typing import Any, Dict, List

from pipeline import config as config_lib, fleet, monitoring


def _scenario(config, model, device, spec: fleet.FleetSpec, pools, out_dir: str, reference_days: int,
              log) -> Dict[str, Any]:
    """Ingests a simulated fleet day by day and runs the monitoring after each day."""
    from components.telemetry import ingest

    # Each run simulates its fleet afresh: a folder left by an earlier run (another --shifted-fraction)
    # would hold its spans, and ingestion refuses the same batch twice.
    shutil.rmtree(out_dir, ignore_errors=True)
    config = dataclasses.replace(config, monitoring=dataclasses.replace(
        config.monitoring, telemetry_root=os.path.join(out_dir, "telemetry")))
    mon_config = dataclasses.replace(config, metadata_path=os.path.join(out_dir, "metadata", "m.sqlite"),
                                     pipeline_root=os.path.join(out_dir, "pipeline_root", config.pipeline_name))
    expect = monitoring.expectations(config)
    reference = fleet.reference_summaries(config, pools["base"], spec, reference_days)
    ingest.ingest(fleet.write_batch(os.path.join(out_dir, "reference"), reference, [], []),
                  monitoring.dataset_dir(config, monitoring.REFERENCE_DATASET), expect)
    days: List[Dict[str, Any]] = []
    for day in range(spec.days):
        shifted = bool(spec.shift) and day >= spec.shift_day
        batch = fleet.day_batch(config, pools, spec, day, spec.devices, os.path.join(out_dir, f"day-{day:03d}"))
        ingest.ingest(batch, monitoring.dataset_dir(config, monitoring.FIELD_DATASET), expect)
        started = time.time()
        decision = monitoring.run(mon_config)
        days.append({"day": day, "shifted": shifted, "retrain": decision["retrain"], "reason": decision["reason"],
                     "drifting_features": decision["drifting_features"][:10],
                     "monitoring_seconds": round(time.time() - started, 1)})
        log(f"  day {day}{' (shifted)' if shifted else ''}: {'RETRAIN' if decision['retrain'] else 'no retrain'}: "
            f"{decision['reason'][:150]}")
    return {"days": days}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=config_lib.DEFAULT_CONFIG)
    parser.add_argument("--workdir", default="work/bench-monitoring")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--shift-day", type=int, default=4)
    parser.add_argument("--shift", default="rain")
    parser.add_argument("--shifted-fraction", type=float, default=1.0, help="Share of the devices the shift reaches.")
    parser.add_argument("--reference-days", type=int, default=3)
    parser.add_argument("--pool-minutes", type=float, default=3.0)
    parser.add_argument("--seconds-per-day", type=float, default=60.0)
    parser.add_argument("--timing-devices", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from components.telemetry import ingest
    from pipeline.runners import local as run_local

    workdir = os.path.abspath(args.workdir)
    config = config_lib.load_config(args.config).with_workdir(workdir)
    log = print
    log(f"Released model: a local run of {config.source} in {workdir} (cached when done before)")
    started = time.time()
    run_local.ensure_dev_signing_key(config)
    run_local.prepare_data(config)
    summary = run_local.run(config)
    model_seconds = time.time() - started
    model, device = fleet.released_model(summary)
    spec = fleet.FleetSpec(devices=args.devices, days=args.days, shift=args.shift, shift_day=args.shift_day,
                           shifted_fraction=args.shifted_fraction, seed=args.seed,
                           seconds_per_day=args.seconds_per_day, pool_minutes=args.pool_minutes)
    spec.check(tuple(config.family.field_shifts))
    started = time.time()
    pools = fleet.build_pools(config, model, spec, device, log)
    pool_seconds = time.time() - started
    results: Dict[str, Any] = {"config": config.source, "spec": dataclasses.asdict(spec),
                               "device": dataclasses.asdict(device), "model_run_seconds": round(model_seconds, 1),
                               "pool_seconds": round(pool_seconds, 1), "run_id": summary.run_id}
    scenarios = {"no_shift": dataclasses.replace(spec, shift="", shift_day=None), "shift": spec}
    for name, scenario_spec in scenarios.items():
        log(f"Fleet '{name}': {spec.devices} devices x {spec.days} days")
        results[name] = _scenario(config, model, device, scenario_spec, pools,
                                  os.path.join(workdir, "fleet", name), args.reference_days, log)
    shift_days = results["shift"]["days"]
    detected = [d["day"] for d in shift_days if d["shifted"] and d["retrain"]]
    results["detection_delay_days"] = (detected[0] - spec.shift_day) if detected else None
    results["false_alarms"] = (sum(d["retrain"] for d in results["no_shift"]["days"]) +
                               sum(d["retrain"] for d in shift_days if not d["shifted"]))
    results["false_alarm_opportunities"] = spec.days + spec.shift_day

    log(f"One day of {args.timing_devices} devices")
    timing_dir = os.path.join(workdir, "fleet", f"timing-{args.timing_devices}")
    shutil.rmtree(timing_dir, ignore_errors=True)   # cold, as the figure says; and no batch ingested twice
    timing_config = dataclasses.replace(config, monitoring=dataclasses.replace(
        config.monitoring, telemetry_root=os.path.join(timing_dir, "telemetry")))
    expect = monitoring.expectations(timing_config)
    started = time.time()
    unshifted = dataclasses.replace(spec, shift="", shift_day=None)
    batch = fleet.day_batch(config, pools, unshifted, 0, args.timing_devices, os.path.join(timing_dir, "day"))
    simulate_seconds = time.time() - started
    started = time.time()
    ingest.ingest(batch, monitoring.dataset_dir(timing_config, monitoring.FIELD_DATASET), expect)
    ingest.ingest(fleet.day_batch(config, pools, unshifted, 0, args.timing_devices,
                                  os.path.join(timing_dir, "reference"), seed_tag=fleet.REFERENCE_SEED_TAG),
                  monitoring.dataset_dir(timing_config, monitoring.REFERENCE_DATASET), expect)
    ingest_seconds = (time.time() - started) / 2
    timing_mon = dataclasses.replace(timing_config, metadata_path=os.path.join(timing_dir, "metadata", "m.sqlite"),
                                     pipeline_root=os.path.join(timing_dir, "pipeline_root", config.pipeline_name))
    started = time.time()
    monitoring.run(timing_mon)
    results["timing"] = {"devices": args.timing_devices, "summaries_from_pools_seconds": round(simulate_seconds, 1),
                         "ingest_seconds_per_batch": round(ingest_seconds, 1),
                         "monitoring_run_seconds": round(time.time() - started, 1),
                         "note": "monitoring run: both ExampleGens and StatisticsGens (field and reference, "
                                 f"{args.timing_devices} summaries each) and the DriftDecision, cold, LocalDagRunner"}
    name = "monitoring.json" if spec.shifted_fraction == 1.0 else f"monitoring-{spec.shifted_fraction:g}.json"
    with open(os.path.join(workdir, name), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(table(results))
    return 0


def table(r: Dict[str, Any]) -> str:
    """The figures as a table (all measured on this machine)."""
    spec, t = r["spec"], r["timing"]
    rows = [
        ("fleet", f"{spec['devices']} devices x {spec['days']} days, {spec['seconds_per_day']:g} s audio per "
                  f"device-day from {spec['pool_minutes']:g} min pools; shift '{spec['shift']}' from day "
                  f"{spec['shift_day']} on {100 * spec['shifted_fraction']:.0f}% of the devices"),
        ("detection delay (measured)", "not detected" if r["detection_delay_days"] is None
         else f"{r['detection_delay_days']} day(s) after the shift"),
        ("false alarms (measured)", f"{r['false_alarms']} in {r['false_alarm_opportunities']} unshifted days "
                                    "(target: none)"),
        ("monitoring run per day (measured)", f"{sum(d['monitoring_seconds'] for d in r['shift']['days']) / len(r['shift']['days']):.1f} s "
                                              f"at {spec['devices']} devices"),
        (f"monitoring run, {t['devices']} devices' day (measured)", f"{t['monitoring_run_seconds']:.1f} s "
                                                                   f"(ingest {t['ingest_seconds_per_batch']:.1f} s)"),
        ("pools through TFLite Micro (measured)", f"{r['pool_seconds']:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


if __name__ == "__main__":
    raise SystemExit(main())
