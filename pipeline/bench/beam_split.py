"""Does Beam's DirectRunner spread the work after a source over its workers?

The same CPU-bound work (a chain of SHA-256 over each record) runs on the same records reached
three ways: read from a plain TFRecord file with ``ReadFromTFRecord`` (how tfx_bsl's TFXIO, and
so TFX's StatisticsGen and Transform, read examples), with ``ReadAllFromTFRecord`` (Beam's
read of file ranges after a reshuffle), and made in memory from a ``Create`` of indexes through
a ``Reshuffle`` (how the planned ExampleGens start: one element per chunk of the plan). Each
source runs in every Beam mode given, each run in a fresh process; the table gives the wall
seconds, the CPU cores the machine kept busy (from ``/proc/stat``, so worker processes count,
and so does anything else running: run it alone), the speedup over the first mode, and how many
processes did the work (each record's work reports its process id).

``python -m pipeline.bench.beam_split --workdir DIR [--records 40000] [--modes in_memory:1,multi_processing:2]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Dict, Sequence

from pipeline.bench import scale

SOURCES = ("read", "read_all", "reshuffled")
RECORD_BYTES = 32 * 1024
RECORDS_PER_INDEX = 1000
RECORDS_FILE = "records.tfrecord"


def record(number: int) -> bytes:
    """The ``number``-th record: RECORD_BYTES deterministic bytes."""
    return hashlib.sha256(number.to_bytes(8, "little")).digest() * (RECORD_BYTES // 32)


def work(value: bytes, rounds: int) -> bytes:
    """CPU-bound work on one record, the same for every source."""
    digest = value[:32]
    for _ in range(rounds):
        digest = hashlib.sha256(digest + value[:4096]).digest()
    return digest


def write_records(path: str, count: int) -> None:
    """Writes ``count`` records to one plain TFRecord file at ``path`` (once)."""
    import apache_beam as beam

    if os.path.exists(path):
        return
    prefix = path + ".partial"
    with beam.Pipeline() as pipeline:
        _ = (pipeline | beam.Create(range(count)) | beam.Map(record)
             | beam.io.WriteToTFRecord(prefix, shard_name_template=""))
    os.replace(prefix, path)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:7]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def _records_from(first: int, count: int):
    return (record(number) for number in range(first, min(first + RECORDS_PER_INDEX, count)))


def _work_where(value: bytes, rounds: int) -> int:
    """Does ``work`` on ``value``; returns the id of the process that did it."""
    work(value, rounds)
    return os.getpid()


def _write_counts(records_by_process, path: str) -> None:
    with open(path, "w") as f:
        json.dump({str(process): records for process, records in records_by_process}, f)


def run_once(path: str, count: int, source: str, mode: str, workers: int, rounds: int) -> Dict[str, float]:
    """One pipeline: ``source``'s records through ``work``, counted by the process that did the work.

    Returns the wall seconds, the cores busy, the records processed and the number of processes that
    processed them.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    counted = path + f".{source}.{mode}.{workers}.count"
    options = PipelineOptions(scale.beam_args_for(mode, workers))
    started, cpu_before = time.time(), busy_cpu_seconds()
    with beam.Pipeline(options=options) as pipeline:
        if source == "read":
            records = pipeline | beam.io.ReadFromTFRecord(path, coder=beam.coders.BytesCoder())
        elif source == "read_all":
            records = (pipeline | beam.Create([path])
                       | beam.io.ReadAllFromTFRecord(coder=beam.coders.BytesCoder()))
        else:
            records = (pipeline | beam.Create(list(range(0, count, RECORDS_PER_INDEX))) | beam.Reshuffle()
                       | beam.FlatMap(_records_from, count))
        _ = (records | beam.Map(_work_where, rounds) | beam.combiners.Count.PerElement()
             | beam.combiners.ToList() | beam.Map(_write_counts, counted))
    seconds = time.time() - started
    cores = (busy_cpu_seconds() - cpu_before) / seconds
    with open(counted) as f:
        records_by_process = json.load(f)
    os.remove(counted)
    return {"seconds": seconds, "cores": cores, "records": sum(records_by_process.values()),
            "processes": len(records_by_process)}


def table(results: Dict[str, Dict[str, Dict[str, float]]], modes: Sequence[str]) -> str:
    """Markdown: one row per source, one column per mode (seconds, cores, speedup over the first mode)."""
    lines = ["| source | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for source, by_mode in results.items():
        first = by_mode[modes[0]]["seconds"]
        cells = [f"{by_mode[m]['seconds']:.1f} s ({by_mode[m]['cores']:.2f} cores, {first / by_mode[m]['seconds']:.2f}x; "
                 f"work in {by_mode[m]['processes']} process{'es' if by_mode[m]['processes'] > 1 else ''})"
                 for m in modes]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--records", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=200, help="SHA-256 rounds of work per record")
    parser.add_argument("--modes", type=scale.beam_modes, default=scale.beam_modes("in_memory:1,multi_processing:2"))
    parser.add_argument("--one", help=argparse.SUPPRESS)   # SOURCE:MODE:WORKERS, run in this process
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, f"{args.records}-{RECORDS_FILE}")
    if args.one:
        source, mode, workers = args.one.split(":")
        print(json.dumps(run_once(path, args.records, source, mode, int(workers), args.rounds)))
        return 0
    write_records(path, args.records)
    labels = [f"{mode}:{workers}" for mode, workers in args.modes]
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    for source in SOURCES:
        for label in labels:
            out = subprocess.run([sys.executable, "-m", "pipeline.bench.beam_split", "--workdir", args.workdir,
                                  "--records", str(args.records), "--rounds", str(args.rounds),
                                  "--one", f"{source}:{label}"], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{source} in {label} failed (exit status {out.returncode}):\n"
                                   f"{out.stderr[-2000:]}")
            results.setdefault(source, {})[label] = json.loads(out.stdout.strip().splitlines()[-1])
            if results[source][label]["records"] != args.records:
                raise RuntimeError(f"{source} in {label} processed {results[source][label]['records']} records "
                                   f"of {args.records}")
    print(f"{args.records:,} records of {RECORD_BYTES // 1024} KiB, {args.rounds} SHA-256 rounds each; "
          f"wall seconds (cores busy, speedup over {labels[0]}; processes that did the work):")
    print(table(results, labels))
    with open(os.path.join(args.workdir, "beam_split.json"), "w") as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
