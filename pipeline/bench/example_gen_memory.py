"""AudioExampleGen's peak memory with TFX's pre-write Reshuffle and without it (ours), as the data grows.

The default synthetic dataset is generated once; a dataset of K copies repeats every clip K times
under new speaker names (hard links: no disk). For each size and each writer a child process runs
the pipeline up to the ExampleGen and reports its peak resident memory (``ru_maxrss``) and wall
time; then the written examples of the two writers are compared (same examples, same order).

"tfx" runs the ExampleGen with ``tfx.components.example_gen.write_split.WriteSplit`` as its write step
(the benchmark swaps ``PlannedExampleGenExecutor.write_split`` in its child process: that is what
is measured); "ours" is the project's ``WriteSplitAsItStreams`` (components/planned_example_gen.py).

Usage: ``python -m pipeline.bench.example_gen_memory --workdir DIR [--copies 1,3] [--writers ours]``; writes
DIR/example_gen_memory.json. ``--writers ours`` alone measures the project's writer at sizes where TFX's
would hold more than the machine's memory (100 copies: 768,000 clips); there is then nothing to compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import resource
import subprocess
import sys
import time
from typing import Dict, List

from components import tfrecords
from pipeline import config as config_lib

WRITERS = ("tfx", "ours")


def _copies(source: str, out: str, copies: int) -> str:
    """``source`` with every clip present ``copies`` times (hard links under new speaker names)."""
    if os.path.isdir(out):
        return out
    staging = out + ".partial"
    for folder, _, files in os.walk(source):
        target = os.path.join(staging, os.path.relpath(folder, source))
        os.makedirs(target, exist_ok=True)
        for name in files:
            os.link(os.path.join(folder, name), os.path.join(target, name))
            if name.endswith(".wav") and "_nohash_" in name:
                for copy in range(1, copies):
                    os.link(os.path.join(folder, name), os.path.join(target, f"copy{copy}x{name}"))
    os.rename(staging, out)
    return out


def run_until_example_gen(config_path: str, data_root: str, workdir: str) -> Dict[str, float]:
    """Runs the config's pipeline on ``data_root`` up to its ExampleGen, in this process, under ``workdir``.

    Returns:
        The run's wall and CPU seconds (with the pipeline's start), the ExampleGen's own seconds, and the
        process's peak RSS in MiB.
    """
    from pipeline.runners import local as run_local

    config = config_lib.load_config(config_path)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=data_root)).with_workdir(workdir)
    start, cpu_start = time.time(), time.process_time()
    summary = run_local.run(config, until=config.family.example_gen_id)
    example_gen = next(c for c in summary.components if c.node_id == config.family.example_gen_id)
    return {"seconds": round(time.time() - start, 1), "cpu_seconds": round(time.process_time() - cpu_start, 1),
            "component_seconds": example_gen.seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def _child(writer: str, config_path: str, data_root: str, workdir: str) -> None:
    if writer == "tfx":
        from tfx.components.example_gen import write_split

        from components import planned_example_gen

        planned_example_gen.PlannedExampleGenExecutor.write_split = (
            lambda self, path: write_split.WriteSplit(path, "tfrecords_gzip"))
    print(json.dumps(run_until_example_gen(config_path, data_root, workdir)))


def split_folders(workdir: str, split: str) -> List[str]:
    """The ``Split-<split>`` folders of the ExampleGen outputs of the runs under ``workdir``."""
    return sorted(glob.glob(os.path.join(workdir, "pipeline_root", "*", "*ExampleGen", "examples", "*",
                                         f"Split-{split}")))


def _split_files(workdir: str, split: str) -> List[str]:
    from tfx.components.example_gen.write_split import DEFAULT_FILE_NAME

    return sorted(path for folder in split_folders(workdir, split)
                  for path in glob.glob(os.path.join(folder, DEFAULT_FILE_NAME + "*")))


def _examples(workdir: str, split: str) -> List[tuple]:
    import tensorflow as tf

    out = []
    for record in tfrecords.record_dataset(_split_files(workdir, split)):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        out.append((feature["source"].bytes_list.value[0], feature["audio"].SerializeToString()))
    return out


def _count(workdir: str, split: str) -> int:
    return sum(1 for _ in tfrecords.record_dataset(_split_files(workdir, split)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=config_lib.DEFAULT_CONFIG)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--copies", default="1,3")
    parser.add_argument("--writers", default=",".join(WRITERS), help="Comma-separated, of: " + ", ".join(WRITERS))
    parser.add_argument("--child", nargs=3, metavar=("WRITER", "DATA_ROOT", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    writers = [w for w in args.writers.split(",") if w]
    if not writers or set(writers) - set(WRITERS):
        parser.error(f"--writers takes a comma-separated list of {', '.join(WRITERS)}, not '{args.writers}'")
    if args.child:
        _child(args.child[0], args.config, args.child[1], args.child[2])
        return 0
    from pipeline.runners import local as run_local

    workdir = os.path.abspath(args.workdir)
    generated = config_lib.load_config(args.config).with_workdir(os.path.join(workdir, "generated"))
    run_local.prepare_data(generated)
    rows: List[Dict[str, object]] = []
    for copies in (int(c) for c in args.copies.split(",")):
        data = _copies(generated.data_root, os.path.join(workdir, f"data-x{copies}"), copies)
        runs = {}
        for writer in writers:
            out = os.path.join(workdir, f"run-x{copies}-{writer}")
            if not os.path.isdir(out):
                result = subprocess.run([sys.executable, "-m", "pipeline.bench.example_gen_memory", "--config",
                                         args.config, "--workdir", workdir, "--child", writer, data, out],
                                        check=True, capture_output=True, text=True)
                with open(out + ".json", "w") as f:
                    f.write(result.stdout.strip().splitlines()[-1])
            with open(out + ".json") as f:
                runs[writer] = {**json.load(f), "dir": out}
        same = (all(_examples(runs["tfx"]["dir"], s) == _examples(runs["ours"]["dir"], s)
                    for s in ("train", "eval", "test")) if len(runs) == len(WRITERS) else None)
        rows.append({"copies": copies, "train_examples": _count(runs[writers[-1]]["dir"], "train"),
                     **{f"{w}_{k}": runs[w][k] if w in runs else None for w in WRITERS
                        for k in ("seconds", "peak_rss_mib")},
                     "same_examples_same_order": same})
        print(json.dumps(rows[-1]), flush=True)
    print("| copies | train examples | TFX WriteSplit: s / peak RSS MiB | ours: s / peak RSS MiB | same examples, same order |")
    print("|---|---|---|---|---|")
    def cell(r, writer):
        return "not run" if r[f"{writer}_seconds"] is None else f"{r[f'{writer}_seconds']} / {r[f'{writer}_peak_rss_mib']:,}"

    for r in rows:
        same = {True: "yes", False: "NO", None: "not compared"}[r["same_examples_same_order"]]
        print(f"| {r['copies']}x | {r['train_examples']:,} | {cell(r, 'tfx')} | {cell(r, 'ours')} | {same} |")
    with open(os.path.join(workdir, "example_gen_memory.json"), "w") as f:
        json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
