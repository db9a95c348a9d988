"""What bringing an ExampleGen's plan into Beam costs, by the way it enters: ``beam.Create`` or ``ReadPlan``.

A plan of N clip references (the shape AudioExampleGen plans: path, label, word, speaker, split) goes
through an otherwise empty pipeline on the in-process DirectRunner, once as ``beam.Create(plan,
reshuffle=True)`` (what the ExampleGens did before) and once through ``planned_example_gen.ReadPlan``
(chunk files, one element per chunk). Each run is a child process; it reports its peak resident memory
above the same process with TFX imported and the plan built, and the pipeline's wall time.

Usage: ``python -m pipeline.bench.plan_memory [--clips 10000,230000]`` (230,000 is 30x the default data).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

WAYS = ("beam.Create", "ReadPlan")


def _peak_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _child(way: str, clips: int) -> dict:
    import apache_beam as beam

    from components import planned_example_gen
    from components.audio_example_gen.layout import ClipRef

    before_plan = _peak_mib()
    plan = [ClipRef(f"word{i % 35}/{i:08x}_nohash_{i % 5}.wav", f"word{i % 35}", f"word{i % 35}", f"{i:08x}",
                    ("train", "eval", "test")[i % 3]) for i in range(clips)]
    baseline = _peak_mib()
    start = time.time()
    with tempfile.TemporaryDirectory() as folder, beam.Pipeline() as pipeline:
        if way == "beam.Create":
            planned = pipeline | beam.Create(planned_example_gen.write_order(plan, 1), reshuffle=True)
        else:
            paths = planned_example_gen.write_plan_chunks(planned_example_gen.write_order(plan, 1), folder)
            planned = pipeline | planned_example_gen.ReadPlan(paths, ClipRef)
        _ = planned | beam.combiners.Count.Globally()
    return {"way": way, "clips": clips, "seconds": round(time.time() - start, 1), "plan_mib": baseline - before_plan,
            "peak_above_baseline_mib": _peak_mib() - baseline}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="10000,230000")
    parser.add_argument("--child", nargs=2, metavar=("WAY", "CLIPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], int(args.child[1]))))
        return 0
    rows = []
    for clips in (int(c) for c in args.clips.split(",")):
        for way in WAYS:
            out = subprocess.run([sys.executable, "-m", "pipeline.bench.plan_memory", "--child", way, str(clips)],
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("| clips | the plan itself, MiB | way | peak RSS above the plan, MiB | seconds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clips']:,} | {r['plan_mib']} | {r['way']} | {r['peak_above_baseline_mib']} | {r['seconds']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
