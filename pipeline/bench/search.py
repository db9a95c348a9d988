"""The model search benchmark: the searched winner against MLPerf Tiny's reference DS-CNN and the old default.

Trains three keyword-spotting models through the same pipeline on the default data:
(a) MLPerf Tiny's reference DS-CNN exactly as published (mlcommons/tiny
    benchmark/training/keyword_spotting/keras_model.py: a 10x4 convolution of 64 filters
    with stride 2x2, four depthwise-separable blocks of 64, on a 49x10 input: our front end
    at 10 channels), (b) the pre-search default (the same layers on the 49x40 map),
    (c) the searched winner (the repository's hyperparameters file, as the default config
    uses it). Optionally runs the search first (``--search``), timing it.

With ``--seeds N`` it trains (a) and (c) again with N-1 more training seeds (the same data and
Transform, answered from TFX's cache) and reports each one's int8 accuracy over the seeds: the
accuracy gap the issue's target judges is a few clips, the size of seed-to-seed variation.

Usage: ``python -m pipeline.bench.search --config CONFIG --workdir DIR [--search] [--seeds N]``
(``make bench-search``). Prints a table and writes DIR/search_bench.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time

from pipeline import config as config_lib
from pipeline.runners import local as run_local

# The reference DS-CNN's layers in the keyword-spotting search space (pipeline/tasks/kws/search.py).
MLPERF_REFERENCE = {"first_filters": 64, "first_kernel": "10x4", "first_stride": "2x2",
                    "block": "depthwise_separable", "blocks": 4, "width": 64, "expansion": 2, "dropout": 0.2,
                    "learning_rate": 0.002}
BOARDS = ("nano33ble_sense", "nucleo_l4r5zi")


def write_hyperparameters(values, folder: str) -> str:
    """``values`` as a KerasTuner config in ``folder``/best_hyperparameters.txt (what the Importer reads)."""
    import keras_tuner as kt

    from pipeline.tasks.kws import search as kws_search

    hp = kt.HyperParameters()
    hp.values.update(values)
    kws_search.build_model(hp, {"input_shape": (49, 10), "classes": 2, "training": {}})  # registers the space
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "best_hyperparameters.txt"), "w") as f:
        json.dump(hp.get_config(), f)
    return folder


def _figures(name: str, summary, config) -> dict:
    with open(os.path.join(summary.quantization["uri"], "quantization_report.json")) as f:
        quantization = json.load(f)
    with open(summary.size_gate["report"].replace(".html", ".json")) as f:
        gate = json.load(f)
    boards = {t["board"]: t for t in gate["targets"]}
    return {
        "model": name, "input": "x".join(map(str, config.family.model_input_shape(config))),
        "float_accuracy": quantization["fidelity"]["float_accuracy"],
        "int8_accuracy": quantization["fidelity"]["quantized_accuracy"],
        "parameters": quantization["parameters"], "model_bytes": quantization["model_bytes"],
        "macs": gate["macs_total"], "arena_bytes": gate["arena"]["smallest_bytes"],
        "latency_ms": {b: boards[b]["latency_ms"] for b in BOARDS if b in boards},
        "latency_high_ms": {b: boards[b].get("latency_high_ms") for b in BOARDS if b in boards},
        "trainer_seconds": next(c.seconds for c in summary.components if c.node_id == "Trainer"),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=config_lib.DEFAULT_CONFIG)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--search", action="store_true", help="Run the search first (its default budget).")
    parser.add_argument("--seeds", type=int, default=1,
                        help="Training seeds for (a) and (c): the first is the config's, then seed+1, ...")
    parser.add_argument("--reuse", action="store_true",
                        help="Keep DIR: TFX's cache answers every run already made (e.g. to add --seeds later).")
    args = parser.parse_args(argv)
    if not args.reuse:
        shutil.rmtree(args.workdir, ignore_errors=True)
    base = config_lib.load_config(args.config)
    base = dataclasses.replace(base, extra_targets=tuple(sorted(set(base.extra_targets) | set(BOARDS))))
    data_root = os.path.join(args.workdir, "data")
    results = {"search": None, "models": []}
    winner_config = base
    from pipeline import pipeline as tinyml_pipeline

    if args.search:
        searching = dataclasses.replace(base, search=dataclasses.replace(base.search, enabled=True),
                                        data=dataclasses.replace(base.data, root=None)).with_workdir(
            os.path.join(args.workdir, "search"))
        run_local.prepare_data(searching)
        data_root = searching.data_root
        start = time.time()
        summary = run_local.run(searching, until=tinyml_pipeline.MODEL_SEARCH)
        results["search"] = {"wall_seconds": round(time.time() - start, 1), **{
            k: summary.search[k] for k in ("candidates", "trials", "rejected_before_training")},
            "search_seconds": next(c.seconds for c in summary.components if c.node_id == "ModelSearch")}
        hyperparameters = summary.artifact_uris[tinyml_pipeline.MODEL_SEARCH]["best_hyperparameters"]
        winner_config = dataclasses.replace(base, training=dataclasses.replace(
            base.training, hyperparameters=hyperparameters))
    else:
        generated = dataclasses.replace(base, data=dataclasses.replace(base.data, root=None)).with_workdir(
            args.workdir)
        run_local.prepare_data(generated)
        data_root = generated.data_root

    def on_data(config):
        return dataclasses.replace(config, data=dataclasses.replace(config.data, root=data_root))

    reference = dataclasses.replace(
        base, features=dataclasses.replace(base.features, channels=10),
        training=dataclasses.replace(base.training, hyperparameters=write_hyperparameters(
            MLPERF_REFERENCE, os.path.join(args.workdir, "mlperf_reference_hp"))))
    previous = dataclasses.replace(base, training=dataclasses.replace(base.training, hyperparameters=None))
    for name, config in (("(a) MLPerf Tiny reference DS-CNN, 49x10", reference),
                         ("(b) pre-search default, 49x40", previous),
                         ("(c) searched winner", winner_config)):
        config = on_data(config).with_workdir(os.path.join(args.workdir, name.split()[0].strip("()")))
        # up to the size gate: the figures compared are the quantizer's and the gate's (no stream, no push)
        summary = run_local.run(config, until=tinyml_pipeline.SIZE_GATE)
        figures = _figures(name, summary, config)
        if args.seeds > 1 and not name.startswith("(b)"):
            figures["seeds"] = [{"seed": config.training.seed, "float_accuracy": figures["float_accuracy"],
                                 "int8_accuracy": figures["int8_accuracy"]}]
            for extra in range(1, args.seeds):
                seeded = dataclasses.replace(config, training=dataclasses.replace(
                    config.training, seed=config.training.seed + extra))
                again = _figures(name, run_local.run(seeded, until=tinyml_pipeline.SIZE_GATE), seeded)
                figures["seeds"].append({"seed": seeded.training.seed, "float_accuracy": again["float_accuracy"],
                                         "int8_accuracy": again["int8_accuracy"]})
        results["models"].append(figures)
        print(f"{name}: done", flush=True)

    print("| model | input | float acc | int8 acc | parameters | model bytes | MACs | arena B | "
          + " | ".join(f"est. ms {b} (band top)" for b in BOARDS) + " |")
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(BOARDS))
    for m in results["models"]:
        print(f"| {m['model']} | {m['input']} | {m['float_accuracy']:.4f} | {m['int8_accuracy']:.4f} | "
              f"{m['parameters']:,} | {m['model_bytes']:,} | {m['macs']:,} | {m['arena_bytes']:,} | " + " | ".join(
                  f"{m['latency_ms'][b]:.1f} ({m['latency_high_ms'][b]:.1f})" for b in BOARDS) + " |")
    for m in results["models"]:
        if m.get("seeds"):
            int8 = [r["int8_accuracy"] for r in m["seeds"]]
            print(f"{m['model']}: int8 accuracy over {len(int8)} training seeds: mean {sum(int8) / len(int8):.4f}, "
                  f"min {min(int8):.4f}, max {max(int8):.4f} ({', '.join(f'{a:.4f}' for a in int8)})")
    if results["search"]:
        s = results["search"]
        print(f"Search: {s['candidates']} candidates, {s['rejected_before_training']} rejected before training, "
              f"{s['trials']} trials; ModelSearch {s['search_seconds']:.0f} s (whole search run {s['wall_seconds']:.0f} s)")
    with open(os.path.join(args.workdir, "search_bench.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
