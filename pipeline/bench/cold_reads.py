"""AudioExampleGen reading clips that are not in the page cache, with and without reads ahead of the decoder.

At 100x the default data (29 GB of wave files) a 24 GB machine cannot keep the clips cached after
generating them, while at 1x and 10x it does: the scale benchmark then times the disk at 100x only.
This benchmark reproduces the 100x situation at a size that runs in minutes. It generates ``--scale``
times the default synthetic speakers once, then for each ``--fetch-ahead`` value evicts the dataset's files
from the page cache (``evict_from_page_cache``) and runs the pipeline up to AudioExampleGen in a child process
with ``PlannedExampleGenExecutor.fetch_ahead`` set to that value (0: each clip read by the decoder when
its turn comes). ``--warm`` adds a run of each value with the files left cached. It reports wall and CPU
seconds, examples per second and peak RSS, and checks that every run wrote the same examples in the same
order (``pipeline.bench.outputs``' digests of each split's examples and of its read order).

Usage: ``python -m pipeline.bench.cold_reads --workdir DIR [--scale 10] [--fetch-ahead 0,8] [--warm]``;
writes DIR/cold_reads.json.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import mmap
import os
import shutil
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from components.ingestion import SPLITS
from pipeline import config as config_lib
from pipeline.bench import example_gen_memory, outputs
from pipeline.bench.measured import ScaleSettings, measure, scaled_config


def evict_from_page_cache(root: str) -> int:
    """Writes dirty pages out, then asks the kernel to drop every file below ``root`` from its page cache.

    ``posix_fadvise(POSIX_FADV_DONTNEED)`` per file: unlike ``/proc/sys/vm/drop_caches`` it needs no
    privilege (containers mount that read-only) and leaves every other file cached. A cache below the
    kernel (a virtual machine's disk) is out of its reach.

    Returns:
        The number of files advised.
    """
    os.sync()
    advised = 0
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            advised += 1
    return advised


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL:
    """The C library, with the prototypes of ``mmap``, ``mincore`` and ``munmap``."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


def _resident_and_size(path: str) -> Tuple[int, int]:
    """Bytes of ``path`` in the page cache (``mincore`` on a read-only mapping) and its size."""
    size = os.path.getsize(path)
    if size == 0:
        return 0, 0
    libc = _libc()
    page = mmap.PAGESIZE
    pages = (size + page - 1) // page
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
        try:
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), f"mincore of {path} failed")
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)
    resident_pages = sum(v & 1 for v in vector)
    return min(size, resident_pages * page), size


def cached_fraction(root: str, sample: int = 2000) -> Optional[float]:
    """The share of the bytes of up to ``sample`` files below ``root`` (evenly spaced in name order) that
    are in the page cache, as util-linux's ``fincore`` counts them; None for an empty folder."""
    paths = sorted(os.path.join(folder, name) for folder, _, files in os.walk(root) for name in files)
    resident = size = 0
    for path in paths[::max(1, len(paths) // sample)]:
        r, s = _resident_and_size(path)
        resident, size = resident + r, size + s
    return resident / size if size else None


def example_digests(workdir: str) -> Dict[str, Dict[str, object]]:
    """Each split's examples digest and read-order digest (``pipeline.bench.outputs``: protobuf's map order
    inside a record, which differs between processes, is ignored)."""
    digests = {}
    for split in SPLITS:
        folders = example_gen_memory.split_folders(workdir, split)
        if len(folders) != 1:
            raise RuntimeError(f"Expected one {split} split below {workdir}, found {len(folders)}.")
        records, read_order = outputs.split_digests(folders[0])
        digests[split] = {"count": records.count, "examples": records.sha256, "read_order": read_order}
    return digests


def _child(config_path: str, data_root: str, workdir: str, fetch_ahead: int) -> None:
    from components import planned_example_gen

    planned_example_gen.PlannedExampleGenExecutor.fetch_ahead = fetch_ahead
    print(json.dumps(example_gen_memory.run_until_example_gen(config_path, data_root, workdir)))


def run_example_gen(config_path: str, data_root: str, out: str, fetch_ahead: int, cold: bool) -> Dict[str, object]:
    """One child run up to AudioExampleGen; the dataset evicted from the page cache first when ``cold``."""
    if cold:
        evict_from_page_cache(data_root)
    cached = cached_fraction(data_root)
    result = subprocess.run([sys.executable, "-m", "pipeline.bench.cold_reads", "--config", config_path,
                             "--child", data_root, out, str(fetch_ahead)],
                            check=True, capture_output=True, text=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return {"fetch_ahead": fetch_ahead, "cold": cold, "cached_at_start": cached, **measured,
            "digests": example_digests(out)}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=config_lib.DEFAULT_CONFIG)
    parser.add_argument("--workdir", help="the data is kept here between runs; each run's output is replaced")
    parser.add_argument("--scale", type=int, default=10, help="times the default synthetic speakers")
    parser.add_argument("--fetch-ahead", default="0,8", help="comma-separated reads in flight ahead of the decoder")
    parser.add_argument("--warm", action="store_true", help="also run each value with the page cache kept")
    parser.add_argument("--child", nargs=3, metavar=("DATA_ROOT", "WORKDIR", "FETCH_AHEAD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.child and not args.workdir:
        parser.error("--workdir is required")
    try:
        args.fetch_ahead = [int(v) for v in args.fetch_ahead.split(",") if v]
    except ValueError:
        parser.error(f"--fetch-ahead takes comma-separated whole numbers, not '{args.fetch_ahead}'")
    if not args.fetch_ahead or min(args.fetch_ahead) < 0:
        parser.error("--fetch-ahead needs at least one value, none negative")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.child:
        _child(args.config, args.child[0], args.child[1], int(args.child[2]))
        return 0
    workdir = os.path.abspath(args.workdir)
    settings = ScaleSettings(factor=args.scale, workdir=os.path.join(workdir, f"x{args.scale}"))
    data_root = scaled_config(config_lib.load_config(args.config), settings).data_root
    if not os.path.isdir(data_root):
        generated = measure("generate", args.config, settings, os.path.join(workdir, "steps"))
        if generated.exit_code != 0:
            print(f"Data generation failed; see {generated.log_path}.", file=sys.stderr)
            return 1
    rows: List[Dict[str, object]] = []
    for cold in (True, False) if args.warm else (True,):
        for fetch_ahead in args.fetch_ahead:
            out = os.path.join(workdir, f"run-ahead{fetch_ahead}-{'cold' if cold else 'warm'}")
            shutil.rmtree(out, ignore_errors=True)
            row = run_example_gen(args.config, data_root, out, fetch_ahead, cold)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "digests"}), flush=True)
    same = all(r["digests"] == rows[0]["digests"] for r in rows)
    examples = sum(d["count"] for d in rows[0]["digests"].values())
    print(f"\n{examples:,} examples at {args.scale}x; AudioExampleGen (the component's own seconds; the run's "
          "wall and CPU seconds include the pipeline's start):")
    print("| reads ahead | data in the page cache at start | AudioExampleGen s | examples/s | run wall s | run CPU s | "
          "peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cached = "?" if r["cached_at_start"] is None else f"{100 * r['cached_at_start']:.1f}%"
        print(f"| {r['fetch_ahead']} | {cached} | {r['component_seconds']:.1f} | "
              f"{examples / r['component_seconds']:,.0f} | {r['seconds']} | {r['cpu_seconds']} | "
              f"{r['peak_rss_mib']:,} |")
    print("Same examples in the same order in every run:", "yes" if same else "NO")
    with open(os.path.join(workdir, "cold_reads.json"), "w") as f:
        json.dump({"scale": args.scale, "examples": examples, "runs": rows, "same_examples_same_order": same}, f,
                  indent=2)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
