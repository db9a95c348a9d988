"""Scale benchmark: how time, memory and disk grow with the data, and what parallel Beam buys.

Usage: ``python -m pipeline.bench.scale --config CONFIG --workdir DIR`` (``make bench-scale``).

1. Growth curve. For each scale factor (default 1, 10, 30 and 100 times the config's
   synthetic speakers, so 1x is the default 7,680 clips and 10x about Speech Commands'
   size), generate the dataset and run the whole pipeline with the Trainer capped at a
   fixed number of steps (one epoch), each in a child process whose whole process tree is
   sampled. Per component: wall time, peak resident memory of the process tree, CPU cores
   it kept busy, bytes written to its output artifacts. Then the fitted growth exponent of
   each component's time (``growth.fit_exponent`` over the examples ingested) and its
   peak memory against the 1x figure, checked against the targets: exponent <= 1.1 and,
   for the ExampleGen, StatisticsGen and Transform, peak memory within 2x of 1x.
2. Determinism at scale: every clip of the smallest scale must be byte-identical in the
   larger datasets (speaker i is the same speaker at every scale; the generator's process
   pool renders them in a different order), and no two speakers may share an id.
3. Parallel Beam. At one scale (default 10x), only the data stages, once per Beam mode
   (default: in-process with one worker, then multi-threaded and multi-process with one
   worker per CPU); per component the speedup over one worker, and whether every mode
   wrote the same examples, statistics, transform graph and transformed examples
   (``outputs.data_stage_digests``), and in the same files and order, which is the order a
   Trainer reads them in. A mode given twice is also compared with its own first run: does it
   write the same thing twice?

A scale runs only if the disk keeps ``--min-free-gb`` free with it (estimated from the
scales measured before it; checked again while it runs, and the run is stopped if free
space or free memory falls below the limits). Skipped scales are reported with the reason; a
stopped or failed pipeline keeps the figures of the components that had finished (read from the
run's ML Metadata, whose run id the bench chooses: ``finished_components``).
Timings are only as good as the machine is quiet: every figure comes with the CPU the
rest of the machine used meanwhile (``others``), and a warning when that was more than a
quarter of a core. ``--cold`` evicts each scale's data from the page cache before its pipeline
runs (``cold_reads.evict_from_page_cache``): without it the scales whose data fit in memory read
what their generation left cached, and a larger one reads from the disk. Results go to
DIR/scale.json, rewritten after every scale; DIR is emptied first.
``--report DIR/scale.json`` prints the report of a finished (or stopped) run again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import psutil

from pipeline import config as config_lib
from pipeline.bench import cold_reads, growth, outputs, proctree
from pipeline.bench.measured import Measured, ScaleSettings, component_windows, measure, scaled_config
from pipeline.runners import workdir as run_workdir

GIB = 1024 ** 3
MIB = 1024 ** 2
DEFAULT_SCALES = (1, 10, 30, 100)
DEFAULT_TRAIN_STEPS = 200
MAX_TIME_EXPONENT = 1.1
MAX_MEMORY_RATIO = 2.0
TARGET_SPEEDUP = 1.6
NOISY_OTHER_CORES = 0.25
# Bytes per generated clip assumed before any scale is measured (WAV, examples, features, slack).
PRIOR_BYTES_PER_CLIP = 120 * 1024
DISK_MARGIN = 1.25   # estimates from smaller scales are multiplied by this
GENERATION_ID = "data generation"
ALL_COMPONENTS = "all"
RESULTS_FILE = "scale.json"


def beam_modes(text: str) -> List[Tuple[str, int]]:
    """``in_memory:1,multi_processing:2`` -> ``[("in_memory", 1), ("multi_processing", 2)]``."""
    modes = []
    for item in text.split(","):
        mode, _, workers = item.strip().partition(":")
        if mode not in ("in_memory", "multi_threading", "multi_processing") or not workers.isdigit() \
                or int(workers) < 1:
            raise argparse.ArgumentTypeError(
                f"'{item}' is not a Beam mode: write MODE:WORKERS with MODE in_memory, multi_threading or "
                "multi_processing and WORKERS a positive number, e.g. in_memory:1,multi_processing:2.")
        modes.append((mode, int(workers)))
    return modes


def beam_args_for(mode: str, workers: int) -> List[str]:
    """The DirectRunner options of a mode."""
    return [f"--direct_running_mode={mode}", f"--direct_num_workers={workers}"]


def folder_bytes(path: str) -> int:
    """Bytes of every file under ``path`` (0 if it does not exist)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


def free_bytes(path: str) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


def make_guard(path: str, min_free_disk: int, min_free_memory: int):
    """A sampler guard: stops a step when free disk or available memory falls below the limits."""
    def guard() -> Optional[str]:
        free = free_bytes(path)
        if free < min_free_disk:
            return (f"free disk fell to {free / GIB:.1f} GiB, below the {min_free_disk / GIB:.0f} GiB to keep free "
                    "(--min-free-gb)")
        available = psutil.virtual_memory().available
        if available < min_free_memory:
            return (f"available memory fell to {available / GIB:.1f} GiB, below {min_free_memory / GIB:.1f} GiB "
                    "(--min-free-memory-gb)")
        return None
    return guard


@dataclasses.dataclass
class ComponentFigures:
    state: str
    seconds: float
    peak_rss_bytes: int
    cpu_cores: Optional[float]
    other_cores: Optional[float]
    bytes_written: int


def component_figures(run: Measured) -> Dict[str, ComponentFigures]:
    """Per component of a measured pipeline run: its time window's figures and its artifacts' bytes."""
    figures = {}
    uris = run.result.get("artifact_uris", {})
    for node, info in run.result.get("components", {}).items():
        w = proctree.window(run.samples, info["start"], info["end"])
        written = sum(folder_bytes(uri) for uri in uris.get(node, {}).values())
        figures[node] = ComponentFigures(info["state"], info["end"] - info["start"], w.peak_rss_bytes, w.cpu_cores,
                                         w.other_cores, written)
    return figures


def how_it_ended(run: Measured) -> str:
    """How a step that was not stopped by the guard ended badly: its exit status or the signal that
    killed it (SIGKILL is what the kernel's out-of-memory killer sends), and its log."""
    if run.exit_code is not None and run.exit_code < 0:
        try:
            name = signal.Signals(-run.exit_code).name
        except ValueError:
            name = f"signal {-run.exit_code}"
        return f"was killed by {name} (log: {run.log_path})"
    return f"failed with exit status {run.exit_code} (log: {run.log_path})"


def ended_component_figures(windows: Dict[str, Dict[str, Any]], samples: Sequence[proctree.Sample]) -> Dict[str, Any]:
    """The figures of the components that ran to the end (state ``done``) in a run's windows
    (``component_windows``), from the tree's samples: what a stopped scale keeps. No bytes written:
    a stopped run's artifacts are not read."""
    figures: Dict[str, Any] = {}
    for node, info in windows.items():
        if info["state"] != "done" or not samples:
            continue
        w = proctree.window(samples, info["start"], info["end"])
        figures[node] = {"seconds": info["end"] - info["start"], "peak_rss_bytes": w.peak_rss_bytes,
                         "cpu_cores": w.cpu_cores, "other_cores": w.other_cores}
    return figures


def whole_step_figures(run: Measured, bytes_written: int) -> ComponentFigures:
    """The figures of a whole step (data generation), from its first sample to its last."""
    w = proctree.window(run.samples, run.samples[0].time, run.samples[-1].time)
    return ComponentFigures("done" if run.exit_code == 0 else "FAILED", run.end - run.start, w.peak_rss_bytes,
                            w.cpu_cores, w.other_cores, bytes_written)


def compare_clips(reference: str, larger: str) -> Dict[str, int]:
    """Compares every WAV of the dataset ``reference`` with the same path in ``larger``, byte for byte."""
    counts = {"identical": 0, "different": 0, "missing": 0}
    for directory, _, files in os.walk(reference):
        for name in files:
            if not name.endswith(".wav"):
                continue
            path = os.path.join(directory, name)
            other = os.path.join(larger, os.path.relpath(path, reference))
            if not os.path.exists(other):
                counts["missing"] += 1
                continue
            with open(path, "rb") as a, open(other, "rb") as b:
                counts["identical" if a.read() == b.read() else "different"] += 1
    return counts


def outputs_verdict(same: Dict[str, bool]) -> str:
    """One line on whether two runs of the data stages wrote the same outputs (``outputs`` digests)."""
    if not same:
        return "not compared"
    return _contents_verdict(same) + "; " + _read_order_verdict(same)


def _read_order_verdict(same: Dict[str, bool]) -> str:
    parts = {"examples_read_order": "examples", "transformed_examples_read_order": "transformed examples"}
    compared = [part for part in parts if part in same]
    if not compared:
        return "read order not compared"
    different = [parts[part] for part in compared if not same[part]]
    if not different:
        return "the same files with the records in the same order (a Trainer reads them in the same order)"
    return ("read order DIFFERENT for the " + " and ".join(different) + " (other files or another record order: "
            "a Trainer reads them in another order, so it trains another model)")


def _contents_verdict(same: Dict[str, bool]) -> str:
    exact = ("examples", "transformed_examples", "transform_graph")
    different = [part for part in exact if not same.get(part, False)]
    if not same.get("statistics_rounded", False) and not same.get("statistics_exact", False):
        different.append("statistics")
    if different:
        return "DIFFERENT: " + ", ".join(different)
    if same.get("statistics"):
        return "identical (examples, statistics, transform graph, transformed examples)"
    if same.get("statistics_rounded"):
        return ("identical examples, transform graph and transformed examples; statistics equal to "
                f"{outputs.STATISTICS_DIGITS} significant digits (float sums added in another order)")
    return ("identical examples, transform graph and transformed examples; statistics: counts, min, max, mean, "
            f"standard deviation, uniques and listed top values equal to {outputs.STATISTICS_DIGITS} significant "
            "digits, the sketch estimates (quantile histograms, median, top counts of features with more distinct "
            "values than the sketch keeps) differ: TFDV merged its partial sketches from other bundles")


def compare_outputs(runs: List[Dict[str, Any]]) -> None:
    """Adds ``same_outputs_as_<mode>`` (part -> equal digests) to every run after the first.

    Each run is compared with the first (the baseline) and, when its mode was given before (a
    repeated mode is labelled "MODE:N (run K)"), with that mode's first run: whether one mode writes
    the same thing twice.
    """
    for entry in runs[1:]:
        first_of_mode = next(r for r in runs if r["mode"].split(" ")[0] == entry["mode"].split(" ")[0])
        references = [runs[0]] + ([first_of_mode] if first_of_mode not in (runs[0], entry) else [])
        for reference in references:
            if "digests" in entry and "digests" in reference:
                entry["same_outputs_as_" + reference["mode"]] = {
                    part: entry["digests"].get(part) == reference["digests"].get(part) for part in reference["digests"]}


def speedup_ceiling(components: Dict[str, Dict[str, Any]], workers: int, cpus: int) -> Optional[Dict[str, float]]:
    """The most ``workers`` workers could speed up one worker's components on ``cpus`` cores.

    A component that kept ``c`` cores busy with one worker can at best keep ``min(workers * c, cpus)``
    busy with more, doing the same CPU work: at most ``min(workers, cpus / c)`` times faster. The
    ceiling of all of them together weighs each by its time. It assumes the work does not grow with
    the workers; extra workers that import or copy more only lower the real figure.

    Args:
        components: one worker's figures per component (``seconds``, ``cpu_cores``).
        workers: the number of workers of the mode compared.
        cpus: the machine's CPUs.

    Returns:
        The ceiling per component whose cores were measured (a component too short to sample counts
        at its own time in the total) and, under ``ALL_COMPONENTS``, of their total time; None
        when no component's cores were measured.
    """
    ceilings: Dict[str, float] = {}
    for node, figures in components.items():
        cores = figures.get("cpu_cores")
        if cores:
            ceilings[node] = min(float(workers), cpus / cores)
    if not ceilings:
        return None
    total = sum(f["seconds"] for f in components.values())
    best_total = sum(f["seconds"] / ceilings.get(node, 1.0) for node, f in components.items())
    ceilings[ALL_COMPONENTS] = total / best_total if best_total else 1.0
    return ceilings


def _mode_workers(label: str) -> int:
    """Workers of a run label such as ``multi_processing:2`` or ``multi_processing:2 (run 2)``."""
    return int(label.split(" ")[0].rsplit(":", 1)[1])


def _fmt_cores(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


class ScaleBenchmark:
    """Runs the benchmark and collects the figures (``results``, written to DIR/scale.json)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.base = config_lib.load_config(args.config)
        self.guard = make_guard(args.workdir, int(args.min_free_gb * GIB), int(args.min_free_memory_gb * GIB))
        self.results: Dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
                        "python": platform.python_version()},
            "settings": {"config": os.path.abspath(args.config), "scales": list(args.scales),
                         "train_steps": args.train_steps, "epochs": args.epochs,
                         "beam_args": list(self.base.beam_args), "min_free_gb": args.min_free_gb,
                         "compare_at": args.compare_at, "cold": args.cold,
                         "beam_modes": [f"{m}:{w}" for m, w in args.beam_modes],
                         "memory": proctree.MEMORY_MEASURE},
            "scales": [], "skipped": [], "growth": {}, "runners": None, "determinism": [],
        }

    def settings(self, factor: int, **kwargs) -> ScaleSettings:
        return ScaleSettings(factor=factor, workdir=os.path.join(self.args.workdir, f"x{factor}"),
                             epochs=self.args.epochs, **kwargs)

    def _clips_expected(self, factor: int) -> int:
        spec = self.base.family.generation_spec(scaled_config(self.base, self.settings(factor)))
        return spec.speakers * spec.repetitions * (len(spec.words) + len(spec.unknown_words))

    def _bytes_needed(self, factor: int) -> int:
        measured = [s for s in self.results["scales"] if s.get("bytes_per_clip")]
        per_clip = max(s["bytes_per_clip"] for s in measured) * DISK_MARGIN if measured else PRIOR_BYTES_PER_CLIP
        return int(per_clip * self._clips_expected(factor))

    def _fits(self, factor: int) -> Optional[str]:
        """None when the scale fits on the disk with the margin, else why not."""
        needed, free = self._bytes_needed(factor), free_bytes(self.args.workdir)
        keep = self.args.min_free_gb * GIB
        if free - needed < keep:
            return (f"needs about {needed / GIB:.1f} GiB (estimated from the smaller scales), {free / GIB:.1f} GiB "
                    f"are free and {keep / GIB:.0f} GiB must stay free")
        return None

    def log(self, text: str) -> None:
        print(text, flush=True)

    @property
    def results_path(self) -> str:
        return os.path.join(self.args.workdir, RESULTS_FILE)

    def save(self) -> None:
        """Writes the figures so far (after every step: a benchmark stopped midway keeps what it measured)."""
        self.results["growth"] = self.growth()
        partial = self.results_path + ".partial"
        with open(partial, "w") as f:
            json.dump(self.results, f, indent=2)
        os.replace(partial, self.results_path)

    def run(self) -> Dict[str, Any]:
        shutil.rmtree(self.args.workdir, ignore_errors=True)
        os.makedirs(self.args.workdir)
        reference_data = None
        for factor in self.args.scales:
            reason = self._fits(factor)
            if reason:
                self.log(f"{factor}x: skipped: {reason}.")
                self.results["skipped"].append({"factor": factor, "reason": reason})
                continue
            scale = self.run_scale(factor)
            self.results["scales"].append(scale)
            self.save()
            if scale.get("stopped"):
                self.log(f"{factor}x: stopped: {scale['stopped']}. Larger scales are not tried.")
                self.results["skipped"].extend({"factor": f, "reason": f"{factor}x was stopped: {scale['stopped']}"}
                                               for f in self.args.scales if f > factor)
                break
            data_root = scaled_config(self.base, self.settings(factor)).data_root
            if reference_data is None:
                reference_data = (factor, data_root)
            else:
                self.check_determinism(reference_data, factor, data_root)
            if factor == self.args.compare_at:
                self.results["runners"] = self.compare_runners(factor, data_root)
                self.save()
            if not self.args.keep:
                self.remove_scale(factor, keep_data=reference_data[0] == factor)
        if reference_data and not self.args.keep:
            shutil.rmtree(self.settings(reference_data[0]).workdir, ignore_errors=True)
        self.results["growth"] = self.growth()
        return self.results

    def remove_scale(self, factor: int, keep_data: bool) -> None:
        folder = self.settings(factor).workdir
        for name in os.listdir(folder):
            if name == "data" and keep_data:
                continue
            path = os.path.join(folder, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def run_scale(self, factor: int) -> Dict[str, Any]:
        settings = self.settings(factor)
        config = scaled_config(self.base, settings)
        steps_dir = os.path.join(settings.workdir, "steps")
        self.log(f"{factor}x: generating {self._clips_expected(factor):,} clips "
                 f"({config.data.synthetic.speakers} speakers) into {config.data_root}")
        generated = measure("generate", self.args.config, settings, steps_dir, guard=self.guard)
        scale: Dict[str, Any] = {"factor": factor, "speakers": config.data.synthetic.speakers}
        if generated.stop_reason or generated.exit_code != 0:
            scale["stopped"] = generated.stop_reason or f"data generation {how_it_ended(generated)}"
            return scale
        data_bytes = folder_bytes(config.data_root)
        scale.update(clips=generated.result["clips"], data_bytes=data_bytes,
                     speakers_distinct=generated.result["speakers_distinct"],
                     generation=dataclasses.asdict(whole_step_figures(generated, data_bytes)))
        self.log(f"{factor}x: generated in {generated.end - generated.start:.1f} s; running the pipeline "
                 f"(Trainer capped at {self.args.train_steps} steps)")
        if self.args.cold:
            cold_reads.evict_from_page_cache(config.data_root)
            scale["data_cached_at_start"] = cold_reads.cached_fraction(config.data_root)
        run_id = run_workdir.new_run_id()
        run = measure("pipeline", self.args.config, settings, steps_dir, train_steps=self.args.train_steps,
                      guard=self.guard, run_id=run_id)
        if run.stop_reason or run.exit_code != 0:
            scale["stopped"] = run.stop_reason or f"the pipeline {how_it_ended(run)}"
            scale["finished_components"] = self.finished_components(config, run_id, run)
            return scale
        figures = component_figures(run)
        artifacts = sum(f.bytes_written for f in figures.values())
        scale.update(examples=run.result["examples"], pipeline_seconds=run.result["wall_seconds"],
                     eval_accuracy=run.result["eval_accuracy"], trainer_fit=run.result.get("trainer_fit"),
                     components={node: dataclasses.asdict(f) for node, f in figures.items()},
                     artifact_bytes=artifacts, bytes_per_clip=(data_bytes + artifacts) / max(1, scale["clips"]),
                     free_disk_gib_after=round(free_bytes(self.args.workdir) / GIB, 1))
        self.log(f"{factor}x: pipeline {run.result['wall_seconds']:.1f} s, {run.result['examples']:,} examples")
        return scale

    def finished_components(self, config: config_lib.PipelineConfig, run_id: str, run: Measured) -> Dict[str, Any]:
        """What a stopped or failed pipeline run had finished, read from its ML Metadata; {} if it cannot be read."""
        try:
            windows = component_windows(config, run_id)
        except Exception as error:  # noqa: BLE001 (a store left mid-write by a killed run: the stop is reported anyway)
            self.log(f"  could not read the stopped run's ML Metadata ({config.metadata_path}): {error}")
            return {}
        return ended_component_figures(windows, run.samples)

    def check_determinism(self, reference: Tuple[int, str], factor: int, data_root: str) -> None:
        counts = compare_clips(reference[1], data_root)
        entry = {"reference": f"{reference[0]}x", "scale": f"{factor}x", **counts}
        self.results["determinism"].append(entry)
        self.log(f"{factor}x: clips of the {reference[0]}x dataset byte-identical in the {factor}x one: "
                 f"{counts['identical']:,}; different {counts['different']}; missing {counts['missing']}")

    def compare_runners(self, factor: int, data_root: str) -> Dict[str, Any]:
        """The data stages once per Beam mode on the scale's dataset; speedups and output digests."""
        runs: List[Dict[str, Any]] = []
        for mode, workers in self.args.beam_modes:
            label = f"{mode}:{workers}"
            repeats = sum(1 for run in runs if run["mode"].split(" ")[0] == label)
            label += f" (run {repeats + 1})" if repeats else ""   # a mode given twice: is it the same twice?
            settings = ScaleSettings(factor=factor, workdir=os.path.join(self.args.workdir,
                                                                         f"x{factor}-{mode}-{workers}-{len(runs)}"),
                                     beam_args=beam_args_for(mode, workers), data_root=data_root)
            self.log(f"{factor}x: data stages with Beam {label}")
            measured = measure("stages", self.args.config, settings, os.path.join(settings.workdir, "steps"),
                               guard=self.guard)
            entry: Dict[str, Any] = {"mode": label, "beam_args": settings.beam_args}
            if measured.stop_reason or measured.exit_code != 0:
                entry["stopped"] = measured.stop_reason or how_it_ended(measured)
                runs.append(entry)
                break
            entry["components"] = {n: dataclasses.asdict(f) for n, f in component_figures(measured).items()}
            entry["digests"] = measured.result["digests"]
            runs.append(entry)
            if not self.args.keep:
                shutil.rmtree(settings.workdir, ignore_errors=True)
        compare_outputs(runs)
        return {"factor": factor, "runs": runs}

    def growth(self) -> Dict[str, Any]:
        done = [s for s in self.results["scales"] if "components" in s]
        if len(done) < 2:
            return {}
        sizes = [s["examples"] for s in done]
        fits = {}
        rows = {GENERATION_ID: [s["generation"] for s in done]}
        for node in done[0]["components"]:
            rows[node] = [s["components"].get(node) for s in done]
        for node, figures in rows.items():
            if any(f is None or f["state"] != "done" for f in figures):
                continue   # cached, skipped or failed somewhere: no growth to fit
            seconds = [f["seconds"] for f in figures]
            entry: Dict[str, Any] = {"memory_ratio": figures[-1]["peak_rss_bytes"] / figures[0]["peak_rss_bytes"]}
            if min(seconds) >= self.args.min_fit_seconds:
                fit = growth.fit_exponent(sizes, seconds)
                entry.update(exponent=fit.exponent, r_squared=fit.r_squared)
            fits[node] = entry
        return fits

    # ------------------------------------------------------------------ report

    def report(self) -> str:
        r = self.results
        lines = [f"Scale benchmark: {r['machine']['cpus']} CPUs, {r['machine']['memory_gib']} GiB; Beam "
                 f"{' '.join(r['settings']['beam_args']) or '(DirectRunner defaults)'}; Trainer capped at "
                 f"{r['settings']['train_steps']} steps in {r['settings']['epochs']} epoch(s)."]
        done = [s for s in r["scales"] if "components" in s]
        for skipped in r["skipped"]:
            lines.append(f"  {skipped['factor']}x not run: {skipped['reason']}.")
        for scale in r["scales"]:
            if scale.get("stopped"):
                lines.append(f"  {scale['factor']}x stopped: {scale['stopped']}.")
                finished = scale.get("finished_components")
                if finished:
                    lines.append("    finished before it (wall s / peak MiB / cores): " + ", ".join(
                        f"{node} {f['seconds']:.1f} / {f['peak_rss_bytes'] / MIB:,.0f} / {_fmt_cores(f['cpu_cores'])}"
                        for node, f in finished.items()))
        if r["settings"].get("cold"):
            resident = ", ".join(f"{s['factor']}x {100 * s['data_cached_at_start']:.1f}%" for s in done
                                 if s.get("data_cached_at_start") is not None)
            lines.append("  Each scale's data evicted from the page cache before its pipeline "
                         f"(resident then: {resident}).")
        if done:
            lines.append("")
            lines.append("Per component: wall s / peak memory of the process tree MiB (the root's RSS, each "
                         "descendant's USS) / CPU cores busy / MiB written (others: cores used by the rest of the "
                         "machine meanwhile)")
            header = "| component | " + " | ".join(f"{s['factor']}x ({s['examples']:,} examples)" for s in done) + \
                     " | time exponent | peak RSS vs 1x |"
            lines += [header, "|" + "---|" * (3 + len(done))]
            for node in [GENERATION_ID] + list(done[0]["components"]):
                cells = []
                for s in done:
                    f = s["generation"] if node == GENERATION_ID else s["components"].get(node)
                    if f is None:
                        cells.append("-")
                        continue
                    cells.append(f"{f['seconds']:.1f} s / {f['peak_rss_bytes'] / MIB:,.0f} / {_fmt_cores(f['cpu_cores'])}"
                                 f" / {f['bytes_written'] / MIB:,.0f} (others {_fmt_cores(f['other_cores'])})")
                g = r["growth"].get(node, {})
                exponent = f"{g['exponent']:.2f}" if "exponent" in g else "-"
                ratio = f"{g['memory_ratio']:.2f}x" if "memory_ratio" in g else "-"
                lines.append(f"| {node} | " + " | ".join(cells) + f" | {exponent} | {ratio} |")
            lines += [""] + self.verdicts()
        for entry in r["determinism"]:
            lines.append(f"Determinism: {entry['identical']:,} clips of the {entry['reference']} dataset are "
                         f"byte-identical in the {entry['scale']} dataset ({entry['different']} different, "
                         f"{entry['missing']} missing).")
        for s in done:
            if s["speakers_distinct"] != s["speakers"]:
                lines.append(f"Speaker ids collide at {s['factor']}x: {s['speakers']} speakers, "
                             f"{s['speakers_distinct']} distinct ids.")
        if r["runners"]:
            lines += [""] + self.runner_report(r["runners"])
        noisy = self.noisy_figures()
        if noisy:
            worst = max(cores for _, cores in noisy)
            lines += ["", f"WARNING: the rest of the machine kept up to {worst:.1f} of the {os.cpu_count()} cores busy "
                          f"during {len(noisy)} of the figures above (more than {NOISY_OTHER_CORES} of a core: "
                          f"{', '.join(name for name, _ in noisy[:4])}{', ...' if len(noisy) > 4 else ''}). Those "
                          "timings and speedups are inflated by other work; re-run on a quiet machine."]
        return "\n".join(lines)

    def verdicts(self) -> List[str]:
        lines = []
        for node, g in self.results["growth"].items():
            if "exponent" in g:
                ok = g["exponent"] <= MAX_TIME_EXPONENT
                lines.append(f"  {node}: time exponent {g['exponent']:.2f} "
                             f"({'ok' if ok else 'ABOVE the target'}: target <= {MAX_TIME_EXPONENT})")
        for node in (self.base.family.example_gen_id, "StatisticsGen", "Transform"):
            g = self.results["growth"].get(node)
            if g:
                ok = g["memory_ratio"] <= MAX_MEMORY_RATIO
                lines.append(f"  {node}: peak memory {g['memory_ratio']:.2f}x the smallest scale's "
                             f"({'ok' if ok else 'ABOVE the target'}: target <= {MAX_MEMORY_RATIO}x)")
        trainer = self.results["growth"].get("Trainer")
        done = [s for s in self.results["scales"] if "components" in s]
        if trainer and done:
            cores = [s["components"]["Trainer"]["cpu_cores"] for s in done if "Trainer" in s["components"]]
            lines.append(f"  Trainer: peak memory {trainer['memory_ratio']:.2f}x the smallest scale's; CPU cores busy "
                         + ", ".join(_fmt_cores(c) for c in cores) + f" of {os.cpu_count()}")
            fits = [(s["factor"], s["trainer_fit"]) for s in done if s.get("trainer_fit")]
            if fits:
                lines.append("  Trainer's model.fit alone (no start-up or export): " + ", ".join(
                    f"{factor}x {fit['steps']} steps in {fit['seconds']:.1f} s, {fit['cores']:.2f} cores busy"
                    for factor, fit in fits) + f" of {os.cpu_count()}")
        return ["Targets:"] + lines if lines else []

    def runner_report(self, runners: Dict[str, Any]) -> List[str]:
        runs = [e for e in runners["runs"] if "components" in e]
        lines = [f"Beam modes at {runners['factor']}x, data stages only: wall s per component "
                 f"(cores: the CPU cores its process tree kept busy; others: cores used by the rest of the machine)"]
        for entry in runners["runs"]:
            if entry.get("stopped"):
                lines.append(f"  {entry['mode']} stopped: {entry['stopped']}")
        if not runs:
            return lines
        baseline = runs[0]
        lines.append("| component | " + " | ".join(e["mode"] for e in runs) + " | best speedup |")
        lines.append("|" + "---|" * (2 + len(runs)))
        for node in baseline["components"]:
            base_seconds = baseline["components"][node]["seconds"]
            cells, best = [], None   # best: (speedup, mode)
            for e in runs:
                f = e["components"].get(node)
                if f is None:
                    cells.append("-")
                    continue
                cells.append(f"{f['seconds']:.1f} ({_fmt_cores(f['cpu_cores'])} cores; "
                             f"others {_fmt_cores(f['other_cores'])})")
                if e is not baseline and f["seconds"] > 0 and base_seconds >= self.args.min_fit_seconds:
                    speedup = base_seconds / f["seconds"]
                    if best is None or speedup > best[0]:
                        best = (speedup, e["mode"])
            lines.append(f"| {node} | " + " | ".join(cells) + " | " +
                         (f"{best[0]:.2f}x ({best[1]})" if best else "-") + " |")
        totals = {e["mode"]: sum(f["seconds"] for f in e["components"].values()) for e in runs}
        base_total = totals[baseline["mode"]]
        lines.append("  data stages in all: " + ", ".join(
            f"{mode} {seconds:.1f} s" + ("" if mode == baseline["mode"] else f" ({base_total / seconds:.2f}x)")
            for mode, seconds in totals.items()))
        cpus = self.results["machine"]["cpus"]
        for workers in sorted({_mode_workers(e["mode"]) for e in runs[1:]}):
            ceiling = speedup_ceiling(baseline["components"], workers, cpus)
            if ceiling:
                lines.append(
                    f"  ceiling for {workers} workers on {cpus} CPUs, from {baseline['mode']}'s cores busy (the same "
                    "CPU work spread perfectly): " + ", ".join(f"{node} {c:.2f}x" for node, c in ceiling.items()
                                                              if node != ALL_COMPONENTS)
                    + f"; all {ceiling[ALL_COMPONENTS]:.2f}x")
        for e in runs[1:]:
            for key in [k for k in e if k.startswith("same_outputs_as_")]:
                lines.append(f"  outputs of {e['mode']} against {key[len('same_outputs_as_'):]}: "
                             + outputs_verdict(e[key]))
        return lines

    def noisy_figures(self) -> List[Tuple[str, float]]:
        """The figures during which other processes used more than NOISY_OTHER_CORES, with how much."""
        measured = []
        for s in self.results["scales"]:
            measured += [(f"{node} at {s['factor']}x", f) for node, f in
                         [(GENERATION_ID, s.get("generation"))] + list(s.get("components", {}).items())]
        for e in (self.results.get("runners") or {}).get("runs", []):
            measured += [(f"{node} with {e['mode']}", f) for node, f in e.get("components", {}).items()]
        return [(name, f["other_cores"]) for name, f in measured
                if f and (f.get("other_cores") or 0) > NOISY_OTHER_CORES and f["seconds"] >= self.args.min_fit_seconds]


def print_saved_report(args: argparse.Namespace) -> int:
    """Prints the report of a saved scale.json (``--report``)."""
    try:
        with open(args.report) as f:
            results = json.load(f)
    except (OSError, ValueError) as err:
        print(f"Cannot read the scale benchmark's results {args.report}: {err}. Give the scale.json a run wrote.",
              file=sys.stderr)
        return 2
    settings = results["settings"]
    args.config = settings["config"] if os.path.exists(settings["config"]) else args.config
    args.workdir = os.path.dirname(os.path.abspath(args.report))
    benchmark = ScaleBenchmark(args)
    benchmark.results = results
    print(benchmark.report())
    return 0


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=config_lib.DEFAULT_CONFIG)
    parser.add_argument("--workdir", help="emptied first (required unless --report)")
    parser.add_argument("--report", metavar="SCALE_JSON", help="print the report of an earlier run's scale.json")
    parser.add_argument("--scales", default=",".join(map(str, DEFAULT_SCALES)),
                        type=lambda text: sorted({int(x) for x in text.split(",")}),
                        help="scale factors of the synthetic speakers, e.g. 1,10,100")
    parser.add_argument("--train-steps", type=int, default=DEFAULT_TRAIN_STEPS, help="the Trainer's step budget")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs the step budget is spread over")
    parser.add_argument("--compare-at", type=int, default=None,
                        help="the scale at which the Beam modes are compared (default 10 if it is one of the "
                             "scales, else the largest; 0: not at all)")
    parser.add_argument("--beam-modes", type=beam_modes,
                        default=beam_modes(f"in_memory:1,multi_threading:{os.cpu_count() or 1},"
                                           f"multi_processing:{os.cpu_count() or 1}"),
                        help="MODE:WORKERS,...; the first is the baseline of the speedups")
    parser.add_argument("--min-free-gb", type=float, default=10.0, help="disk space that must stay free")
    parser.add_argument("--min-free-memory-gb", type=float, default=2.0, help="memory that must stay available")
    parser.add_argument("--min-fit-seconds", type=float, default=1.0,
                        help="components faster than this at some scale get no exponent (noise, not growth)")
    parser.add_argument("--keep", action="store_true", help="keep every scale's data and artifacts")
    parser.add_argument("--cold", action="store_true",
                        help="evict each scale's data from the page cache before its pipeline runs, so that every "
                             "scale reads from the disk (without it the smaller scales read what generation cached)")
    args = parser.parse_args(argv)
    if args.report:
        return args
    if not args.workdir:
        parser.error("--workdir is required: the folder the benchmark empties and works in.")
    if any(f < 1 for f in args.scales):
        parser.error("--scales takes positive whole factors, e.g. 1,10,100.")
    if args.train_steps < 1 or args.epochs < 1:
        parser.error("--train-steps and --epochs take positive numbers.")
    if args.compare_at is None:
        args.compare_at = 10 if 10 in args.scales else max(args.scales)
    if args.compare_at and args.compare_at not in args.scales:
        parser.error(f"--compare-at {args.compare_at} is not one of the --scales {args.scales}; pick one of them "
                     "or 0 to compare no Beam modes.")
    args.workdir = os.path.abspath(args.workdir)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if args.report:
            return print_saved_report(args)
        benchmark = ScaleBenchmark(args)
    except config_lib.ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    started = time.time()
    results = benchmark.run()
    results["total_seconds"] = round(time.time() - started, 1)
    benchmark.save()
    print()
    print(benchmark.report())
    print(f"\nFigures: {benchmark.results_path} ({results['total_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
