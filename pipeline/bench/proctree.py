"""Memory and CPU of a whole process tree, sampled from outside it.

The pipeline runs in a child process whose own children (Beam's multi-process workers,
the data generator's pool) come and go; ``TreeSampler`` samples the child and every
descendant from a thread of the parent, so that the sampler's own memory is not counted
and no process that lives longer than a sampling interval is missed. ``window`` turns
the samples into the figures of one stretch of time: a component's run.

The tree's memory is the root's resident set (RSS) plus each descendant's unique set (USS:
the pages no other process maps). Summing RSS would count a page once per process that maps
it: a child forked from the pipeline (TFLite Micro's probes run in one, ``components/tflm``)
shares its parent's whole heap copy-on-write, and summed RSS doubled the tree for as long
as the child lived. What this leaves out: pages that descendants share among themselves but
not with the root (a library only the workers load, a worker's own forks). Here the root has
loaded what its workers load (TensorFlow, Beam, TFDV), so that is small; summing PSS instead
would split the root's library pages with whatever else maps them (the bench's own process).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, List, Optional, Sequence

import psutil


_SHORTEST_CPU_WINDOW = 1.0   # seconds
MEMORY_MEASURE = "root RSS + descendants' USS"   # what ``Sample.rss_bytes`` sums (summed RSS before 04e0058)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One look at the tree."""

    time: float         # seconds since the epoch
    rss_bytes: int      # resident memory of the tree: the root's RSS plus each live descendant's USS
    cpu_seconds: float  # user + system time of the tree so far, reaped children included
    processes: int
    machine_cpu_seconds: float = 0.0   # busy time of every CPU of the machine (all processes) since boot


@dataclasses.dataclass(frozen=True)
class Window:
    """The tree between two instants."""

    peak_rss_bytes: int
    cpu_cores: Optional[float]   # CPU seconds per wall second: 2.0 is both cores busy; None if too short
    seconds: float
    other_cores: Optional[float] = None   # the same for every other process of the machine: load that skews timings


def sample_tree(pid: int) -> Optional[Sample]:
    """Samples ``pid`` and its descendants now; None when ``pid`` is gone.

    A process's CPU time counts its own and that of its children it has waited for, so
    the sum over the live processes counts every process once, living or reaped.
    """
    try:
        root = psutil.Process(pid)
        processes = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    rss, cpu, alive = 0, 0.0, 0
    for process in processes:
        try:
            with process.oneshot():
                times = process.cpu_times()
                memory = process.memory_info().rss if process is root else _unique_bytes(process)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue  # it ended between the listing and the look: its time moves to its parent
        cpu += times.user + times.system + times.children_user + times.children_system
        rss += memory
        alive += 1
    if not alive:
        return None
    return Sample(time.time(), rss, cpu, alive, machine_busy_seconds())


def _unique_bytes(process: psutil.Process) -> int:
    """The pages only ``process`` maps (USS); its RSS where the kernel does not say (no smaps)."""
    try:
        return getattr(process.memory_full_info(), "uss", None) or process.memory_info().rss
    except psutil.AccessDenied:
        return process.memory_info().rss


def machine_busy_seconds() -> float:
    """CPU time the machine's CPUs have spent running processes since boot (all processes).

    Idle, I/O wait and time stolen by a hypervisor are not counted; guest time is already
    part of user time on Linux.
    """
    times = psutil.cpu_times()
    not_running = ("idle", "iowait", "steal", "guest", "guest_nice")
    return sum(times) - sum(getattr(times, field, 0.0) for field in not_running)


class TreeSampler:
    """Samples a process tree every ``interval`` seconds in a background thread.

    Args:
        pid: the root of the tree (a child of this process).
        interval: seconds between samples.
        guard: called after every sample; a non-empty string it returns stops sampling and
            is kept as ``stop_reason`` (the caller then ends the child), e.g. too little disk.
    """

    def __init__(self, pid: int, interval: float = 0.25, guard: Optional[Callable[[], Optional[str]]] = None):
        self._pid = pid
        self._interval = interval
        self._guard = guard
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sampler-{pid}", daemon=True)
        self.samples: List[Sample] = []
        self.stop_reason: Optional[str] = None

    def _loop(self) -> None:
        cpu_so_far = 0.0
        while not self._stop.is_set():
            sample = sample_tree(self._pid)
            if sample is not None:
                # Between a child's exit and its parent's wait its time is briefly counted nowhere.
                cpu_so_far = max(cpu_so_far, sample.cpu_seconds)
                self.samples.append(dataclasses.replace(sample, cpu_seconds=cpu_so_far))
            if self._guard is not None:
                reason = self._guard()
                if reason:
                    self.stop_reason = reason
                    return
            self._stop.wait(self._interval)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def stopped(self) -> bool:
        """Whether the guard stopped the sampling."""
        return self.stop_reason is not None


def window(samples: Sequence[Sample], start: float, end: float) -> Window:
    """Peak memory and average CPU use of the tree between ``start`` and ``end`` (epoch seconds).

    The peak is over the samples inside the window, or the nearest one when the window is
    shorter than the sampling interval. CPU use is the CPU time spent between the last
    sample at or before ``start`` and the first at or after ``end``, over that span; None for
    a window shorter than a second, where the sampling interval would dominate. ``other_cores``
    is the CPU the rest of the machine used meanwhile: on a shared machine, what inflates timings.
    """
    if not samples:
        raise ValueError("No samples: the process ended before it could be sampled.")
    inside = [s for s in samples if start <= s.time <= end]
    if not inside:
        inside = [min(samples, key=lambda s: abs(s.time - (start + end) / 2))]
    before = [s for s in samples if s.time <= start]
    after = [s for s in samples if s.time >= end]
    cores = others = None
    if end - start >= _SHORTEST_CPU_WINDOW and before and after and after[0].time > before[-1].time:
        first, last = before[-1], after[0]
        span = last.time - first.time
        cores = (last.cpu_seconds - first.cpu_seconds) / span
        others = max(0.0, (last.machine_cpu_seconds - first.machine_cpu_seconds) / span - cores)
    return Window(peak_rss_bytes=max(s.rss_bytes for s in inside), cpu_cores=cores, seconds=end - start,
                  other_cores=others)
