"""Live progress of a local run: which component runs, for how long, and countable work as bars.

With a terminal, Rich draws a spinner per component and bars for data generation and
training epochs; without one (CI, pipes), the same events print as plain lines.
Events come from the runner's and the Trainer's log records, so nothing in the
pipeline knows about the console.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Dict, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

# What the Trainer logs after each epoch (pipeline/tasks/kws/trainer.py).
EPOCH_PATTERN = re.compile(r"Training epoch (\d+)/(\d+)(.*)")
COMPONENT_PATTERN = re.compile(r"Component (\S+) is (running|finished)")
# What the ModelSearch logs at each trial's start (components/model_search/tuner.py).
TRIAL_PATTERN = re.compile(r"ModelSearch trial (\d+)/(\d+) starts")
# What the ExampleGens log while reading (components/*_example_gen/executor.py).
INGEST_PATTERN = re.compile(r"(\w+ExampleGen) ingested (\d+)/(\d+) (\w+)")


class RunProgress:
    """Shows progress on ``console``; use as a context manager around the run."""

    def __init__(self, console: Optional[Console] = None):
        self.console = console or Console(stderr=False)
        self.live = self.console.is_terminal
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                                  transient=False) if self.live else None
        self._tasks: Dict[str, TaskID] = {}
        self._counts: Dict[str, int] = {}
        self._started: Dict[str, float] = {}
        self._last_plain = 0.0

    def __enter__(self) -> "RunProgress":
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress:
            self._progress.stop()

    def counted(self, label: str, done: int, total: int) -> None:
        """Countable work (clips generated or ingested, epochs trained); never moves backwards."""
        done = self._counts[label] = max(done, self._counts.get(label, 0))
        if self._progress:
            if label not in self._tasks:
                self._tasks[label] = self._progress.add_task(label, total=total)
            self._progress.update(self._tasks[label], completed=done, total=total)
        elif done == total or time.time() - self._last_plain > 2.0:
            self._last_plain = time.time()
            self.console.print(f"  {label}: {done}/{total} ({100 * done // max(total, 1)}%)", highlight=False)

    def component(self, node: str, running: bool) -> None:
        if running:
            self._started[node] = time.time()
            if self._progress:
                self._tasks[node] = self._progress.add_task(f"{node}", total=None)
            else:
                self.console.print(f"  ▶ {node} ...", highlight=False)
            return
        seconds = time.time() - self._started.get(node, time.time())
        if self._progress and node in self._tasks:
            self._progress.update(self._tasks[node], total=1, completed=1, description=f"✔ {node} ({seconds:.1f} s)")
        elif not self._progress:
            self.console.print(f"  ✔ {node} ({seconds:.1f} s)", highlight=False)

    def handler(self) -> logging.Handler:
        """A logging handler that turns the runner's and Trainer's records into progress."""
        return _ProgressHandler(self)


class _ProgressHandler(logging.Handler):
    def __init__(self, progress: RunProgress):
        super().__init__(logging.INFO)
        self._progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        component = COMPONENT_PATTERN.search(message)
        if component:
            self._progress.component(component.group(1), component.group(2) == "running")
            return
        ingested = INGEST_PATTERN.search(message)
        if ingested:
            self._progress.counted(f"{ingested.group(1)} {ingested.group(4)}", int(ingested.group(2)),
                                   int(ingested.group(3)))
            return
        trial = TRIAL_PATTERN.search(message)
        if trial:
            self._progress.counted("ModelSearch trials", int(trial.group(1)), int(trial.group(2)))
            return
        epoch = EPOCH_PATTERN.search(message)
        if epoch:
            self._progress.counted("Trainer epochs", int(epoch.group(1)), int(epoch.group(2)))
