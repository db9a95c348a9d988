"""A dask.distributed cluster on loopback for tests: one scheduler and N worker processes.

Every part is its own operating-system process, started from this environment's Python
with the ``dask`` command line (``distributed.cli``), as an operator would start them on
separate machines; the workers import the project from the installed package, not from
the test process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from typing import Dict, Iterator, List, Optional

_START_TIMEOUT_SECONDS = 120.0


class DaskClusterError(RuntimeError):
    """The cluster did not come up; the message names the log to read."""


def _spawn(args: List[str], log_path: str, env: Dict[str, str]) -> subprocess.Popen:
    log = open(log_path, "wb")
    try:
        return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    finally:
        log.close()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_workers(address: str, workers: int, deadline: float, logs: List[str]) -> None:
    from dask.distributed import Client

    with Client(address, timeout=max(1.0, deadline - time.time())) as client:
        try:
            client.wait_for_workers(workers, timeout=max(1.0, deadline - time.time()))
        except TimeoutError as err:
            raise DaskClusterError(f"Only {len(client.scheduler_info()['workers'])} of {workers} dask workers "
                                   f"joined the scheduler at {address}; see {', '.join(logs)}.") from err


@contextlib.contextmanager
def dask_cluster(folder: str, workers: int = 2, threads_per_worker: int = 1,
                 import_path: Optional[str] = None) -> Iterator[str]:
    """Starts a scheduler and ``workers`` worker processes on 127.0.0.1; yields the scheduler's address.

    Args:
        folder: where the scheduler file, the logs and the workers' spill space go (created).
        workers: worker processes, each its own ``dask worker`` process.
        threads_per_worker: threads in each worker.
        import_path: a folder the workers import from besides the installed packages (PYTHONPATH),
            e.g. the checkout, for code that is not installed (``tests.support``).

    Raises:
        DaskClusterError: when the scheduler or a worker does not start in time.
    """
    os.makedirs(folder, exist_ok=True)
    scheduler_file = os.path.join(folder, "scheduler.json")
    processes: List[subprocess.Popen] = []
    logs = [os.path.join(folder, "scheduler.log")]
    env = dict(os.environ)
    if import_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (import_path, env.get("PYTHONPATH")) if p)
    try:
        processes.append(_spawn(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--dashboard-address", "127.0.0.1:0", "--scheduler-file", scheduler_file],
                                logs[0], env))
        deadline = time.time() + _START_TIMEOUT_SECONDS
        while not os.path.exists(scheduler_file):
            if processes[0].poll() is not None or time.time() > deadline:
                raise DaskClusterError(f"The dask scheduler did not start; see {logs[0]}.")
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one go, but give the writer a moment to close it
        with open(scheduler_file) as f:
            address = json.load(f)["address"]
        for i in range(workers):
            logs.append(os.path.join(folder, f"worker-{i}.log"))
            processes.append(_spawn(["distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                                     "--nworkers", "1", "--nthreads", str(threads_per_worker), "--no-nanny",
                                     "--dashboard-address", "127.0.0.1:0", "--name", f"worker-{i}",
                                     "--local-directory", os.path.join(folder, f"worker-{i}")], logs[-1], env))
        _wait_for_workers(address, workers, deadline, logs)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)
