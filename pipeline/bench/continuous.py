"""`make bench-continuous`: continuous training on a field span, and the accuracy it recovers.

Steps (measured on this machine; printed and saved to WORKDIR/continuous.json):

1. A data root of spans: span-0 is the config's synthetic dataset; ``data.training_spans`` is 2.
2. Run 1 of the config's pipeline: the ExampleGen reads span 0 only; model A.
3. A field campaign under ``--shift`` (``tinyml-tfx fleet collect``): ``--minutes`` of audio from ``--voices`` new
   voices, labelled by the simulator's ground truth, written as span-1.
4. Run 2: the ExampleGen reads spans 0 and 1 (ML Metadata's ``spans_read`` is checked); model B.
5. Both int8 models on TFLite Micro, on run 2's test split (the same examples for both), per span: span 0 is
   the original distribution, span 1 the shifted one, voices neither model trained on. Features come
   from run 2's transform graph; with no analyzers in the keyword-spotting Transform they equal run 1's.

Usage: python -m pipeline.bench.continuous --config pipeline/configs/kws.yaml --workdir work/bench-continuous
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Dict

from pipeline import config as config_lib, continuous


def _run(config, args, data_root: str, figures: Dict[str, Any]):
    """Steps 2-4: run 1, the field span, run 2 (figures filled in as they are measured)."""
    from pipeline.runners import local as run_local
    from pipeline.tasks.common import datasets

    family = config.family
    started = time.time()
    first = run_local.run(config)
    figures["run1_seconds"] = round(time.time() - started, 1)
    print(f"Run 1 (span 0): {first.run_id}, {figures['run1_seconds']} s, spans read {continuous.spans_read(config, first)}")

    started = time.time()
    manifest = family.write_field_span(config, args.shift, args.minutes, args.voices, 1,
                                       os.path.join(data_root, datasets.span_folder(1)), log=print)
    figures["collect_seconds"] = round(time.time() - started, 1)
    figures["field_span"] = {k: manifest[k] for k in ("clips", "examples_before_sampling", "label_source", "voices",
                                                      "snr_db")}
    started = time.time()
    second = run_local.run(config)
    figures["run2_seconds"] = round(time.time() - started, 1)
    figures["run2_spans_read"] = continuous.spans_read(config, second)
    print(f"Run 2 (spans 0-1): {second.run_id}, {figures['run2_seconds']} s, spans read {figures['run2_spans_read']}")

    return first, second


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=config_lib.DEFAULT_CONFIG)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--shift", default="rain")
    parser.add_argument("--minutes", type=float, default=60.0, help="Audio the field campaign records.")
    parser.add_argument("--voices", type=int, default=20, help="New voices in the field campaign.")
    parser.add_argument("--runs", default=None,
                        help="RUN1,RUN2: evaluate two earlier runs of this workdir instead of running (see step 5).")
    args = parser.parse_args(argv)

    from pipeline.runners import local as run_local
    from pipeline.tasks.common import datasets

    workdir = os.path.abspath(args.workdir)
    data_root = os.path.join(workdir, "data")
    if not args.runs and 1 in datasets.span_folders(data_root):
        raise SystemExit(f"{data_root}/span-1 exists: this benchmark measures the first retrain; remove {workdir}.")
    config = continuous.spans_workdir_config(args.config, workdir)
    figures: Dict[str, Any] = {"config": args.config, "shift": args.shift, "minutes": args.minutes,
                               "voices": args.voices}

    if args.runs:
        saved = os.path.join(workdir, "continuous.json")
        if os.path.exists(saved):
            with open(saved, encoding="utf-8") as f:
                figures.update(json.load(f))
        first, second = (run_local.summarise(config, 0.0, run_id) for run_id in args.runs.split(","))
        with open(os.path.join(data_root, "span-1", "DATASET.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        figures["field_span"] = {k: manifest[k] for k in ("clips", "examples_before_sampling", "label_source",
                                                          "voices", "snr_db")}
    else:
        first, second = _run(config, args, data_root, figures)
    comparison = continuous.compare_runs(config, first, second)
    if not args.runs:
        continuous.record_retrain(config, comparison)   # the monitoring report shows it
    figures["accuracy"] = {"A (span 0)": comparison["accuracy"]["before"],
                           "B (spans 0-1)": comparison["accuracy"]["after"]}
    figures["runs"] = {name: {"run_id": r.run_id, "eval_accuracy": r.eval_accuracy, "blessed": r.blessed,
                              "test": r.test, "released": bool(r.release)} for name, r in (("run1", first),
                                                                                         ("run2", second))}
    print(f"\nInt8 accuracy on TFLite Micro, {continuous.SPLIT} split of run 2's examples (measured):")
    print(f"{'model':<16}{'span':<9}{'examples':>9}{'accuracy':>10}")
    for name, spans in figures["accuracy"].items():
        for span, row in spans.items():
            print(f"{name:<16}{span:<9}{row['examples']:>9}{row['accuracy']:>10.4f}")
    with open(os.path.join(workdir, "continuous.json"), "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=2, sort_keys=True)
    print(f"Saved {os.path.join(workdir, 'continuous.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
