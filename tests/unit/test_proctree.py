"""pipeline/bench/proctree.py: memory and CPU of a process tree, sampled from outside it."""

import subprocess
import sys
import time

import psutil
import pytest

from pipeline.bench import proctree

# A child that starts a grandchild holding 300 MB, spends 1.5 s of CPU, and waits for it.
_TREE = """
import subprocess, sys, time
holder = subprocess.Popen([sys.executable, "-c",
    "import time; block = bytearray(300 * 1024 * 1024); block[::4096] = b'x' * len(block[::4096]); time.sleep(4)"])
while time.process_time() < 1.5:
    pass
holder.wait()
"""


def test_the_sampler_sees_the_grandchilds_memory_and_the_childs_cpu():
    child = subprocess.Popen([sys.executable, "-c", _TREE])
    with proctree.TreeSampler(child.pid, interval=0.1) as sampler:
        child.wait()
    assert sampler.samples and not sampler.stopped
    assert max(s.processes for s in sampler.samples) == 2
    peak = max(s.rss_bytes for s in sampler.samples)
    assert peak > 300 * 1024 * 1024   # the grandchild's block is in the tree's memory
    whole = proctree.window(sampler.samples, sampler.samples[0].time, sampler.samples[-1].time)
    assert whole.peak_rss_bytes == peak
    cpu = [s.cpu_seconds for s in sampler.samples]
    assert cpu == sorted(cpu)
    # The child's 1.5 s of CPU, the grandchild's page touching and both start-ups; on a busy machine too.
    assert 1.4 < cpu[-1] - cpu[0] < 3.5
    assert 0 < whole.cpu_cores <= 2.0


# A child that fills 300 MB, then forks: the forked grandchild maps the same pages copy-on-write.
_FORKED = """
import os, sys, time
block = bytearray(300 * 1024 * 1024)
block[::4096] = b'x' * len(block[::4096])
pid = os.fork()
if pid == 0:
    time.sleep(2)
    os._exit(0)
print("forked", flush=True)
os.waitpid(pid, 0)
"""


def test_pages_a_forked_child_shares_with_its_parent_count_once():
    child = subprocess.Popen([sys.executable, "-c", _FORKED], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "forked"
        time.sleep(0.3)
        sample = proctree.sample_tree(child.pid)
        root_rss = psutil.Process(child.pid).memory_info().rss
    finally:
        child.wait()
    assert sample.processes == 2
    assert root_rss > 300 * 1024 * 1024
    # Summed RSS would be about 2 x 300 MB; the grandchild adds only the pages it wrote itself.
    assert sample.rss_bytes < root_rss + 50 * 1024 * 1024


def test_a_descendant_whose_pages_cannot_be_read_counts_its_rss_and_keeps_its_cpu(monkeypatch):
    child = subprocess.Popen([sys.executable, "-c", _FORKED], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "forked"

        def denied(self):
            raise psutil.AccessDenied(self.pid)

        monkeypatch.setattr(psutil.Process, "memory_full_info", denied)
        sample = proctree.sample_tree(child.pid)
    finally:
        child.wait()
    assert sample.processes == 2   # not dropped: its CPU time still counts
    assert sample.rss_bytes > 2 * 300 * 1024 * 1024   # the fallback, summed RSS, counts the shared block twice


def test_the_guard_stops_the_sampling_and_says_why():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        calls = []

        def guard():
            calls.append(1)
            return "disk is full" if len(calls) >= 3 else None

        with proctree.TreeSampler(child.pid, interval=0.05, guard=guard) as sampler:
            deadline = time.time() + 10
            while not sampler.stopped and time.time() < deadline:
                time.sleep(0.05)
        assert sampler.stop_reason == "disk is full"
        assert len(sampler.samples) == 3
    finally:
        child.kill()
        child.wait()


def _samples():
    # rss, cpu seconds of the tree, machine busy seconds, one second apart
    rows = [(100, 0.0, 0.0), (300, 1.0, 1.5), (200, 3.0, 4.0), (150, 5.0, 7.0), (100, 5.5, 8.0)]
    return [proctree.Sample(time=1000.0 + i, rss_bytes=rss, cpu_seconds=cpu, processes=1, machine_cpu_seconds=m)
            for i, (rss, cpu, m) in enumerate(rows)]


def test_a_window_takes_the_peak_inside_it_and_the_cpu_across_it():
    w = proctree.window(_samples(), 1001.0, 1003.0)
    assert w.peak_rss_bytes == 300
    assert w.cpu_cores == pytest.approx((5.0 - 1.0) / 2)
    assert w.other_cores == pytest.approx((7.0 - 1.5) / 2 - 2.0)
    assert w.seconds == 2.0


def test_a_window_shorter_than_a_second_gets_the_nearest_sample_and_no_cpu_figure():
    w = proctree.window(_samples(), 1002.2, 1002.4)
    assert w.peak_rss_bytes == 200
    assert w.cpu_cores is None and w.other_cores is None


def test_a_window_needs_samples():
    with pytest.raises(ValueError, match="No samples"):
        proctree.window([], 0.0, 1.0)


def test_a_finished_process_has_no_sample():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert proctree.sample_tree(child.pid) is None
