"""One run per work directory, and ML Metadata that tells the truth about runs that were killed.

A local run holds ``WORKDIR/.tinyml-tfx.lock`` (an ``flock``, released by the kernel when the
process dies, however it dies) with who holds it written inside. A second run on the same
work directory stops with one paragraph naming the holder, or waits for it.

A run killed with SIGKILL leaves its executions ``RUNNING`` in ML Metadata forever; the next
run, holding the lock (so no other process can be running them), marks them ``CANCELED``
with the reason, and marks the outputs they had declared ``ABANDONED``, naming their folders.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import socket
import time
from typing import List, Optional

LOCK_FILE = ".tinyml-tfx.lock"
ABANDONED_PROPERTY = "abandoned"   # custom property on an execution a killed run left behind


class WorkdirBusy(RuntimeError):
    """Another run holds the work directory; the message names it and what to do."""


@dataclasses.dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: str
    run_id: str


class WorkdirLock:
    """The work directory's run lock; a context manager.

    Args:
        workdir: the run's work directory (created if missing).
        run_id: the run that takes the lock, written into the lock file for others to see.
        wait: block until the holder finishes instead of refusing.
    """

    def __init__(self, workdir: str, run_id: str, wait: bool = False):
        self.path = os.path.join(workdir, LOCK_FILE)
        self.run_id = run_id
        self.wait = wait
        self._fd: Optional[int] = None

    def __enter__(self) -> "WorkdirLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = read_holder(self.path)
            os.close(fd)
            who = (f"run {holder.run_id} (PID {holder.pid} on {holder.host}, started {holder.started})"
                   if holder else "another run")
            raise WorkdirBusy(
                f"The work directory {os.path.dirname(self.path)} is in use by {who}. Two runs on one work "
                "directory would share its ML Metadata, logs and reports. Wait for it to finish (or pass --wait), "
                "or give this run another --workdir.") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(dataclasses.asdict(Holder(
            pid=os.getpid(), host=socket.gethostname(), started=datetime.datetime.now().isoformat(timespec="seconds"),
            run_id=self.run_id))).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def read_holder(path: str) -> Optional[Holder]:
    """Who holds (or last held) the lock at ``path``, from its contents; None when unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return Holder(**json.load(f))
    except (OSError, ValueError, TypeError):
        return None


def new_run_id() -> str:
    """A run id as TFX's LocalDagRunner makes them (the local time, ISO format)."""
    return datetime.datetime.now().isoformat()


@dataclasses.dataclass(frozen=True)
class AbandonedExecution:
    execution_id: int
    node_id: str
    run_id: str
    output_uris: List[str]


def mark_abandoned_executions(metadata_path: str) -> List[AbandonedExecution]:
    """Marks what killed runs left ``RUNNING`` (or ``NEW``) in ML Metadata as ``CANCELED``.

    Call only while holding the work directory's lock: then no live process runs them.
    Their declared outputs become ``ABANDONED``; the folders stay, named in the result.
    """
    if not os.path.exists(metadata_path):
        return []
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    store = metadata_store.MetadataStore(connection)
    unfinished = (metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.NEW)
    found = []
    for execution in store.get_executions():
        if execution.last_known_state not in unfinished:
            continue
        contexts = store.get_contexts_by_execution(execution.id)
        types = {t.id: t.name for t in store.get_context_types_by_id(list({c.type_id for c in contexts}))}
        node = next((c.name.split(".", 1)[-1] for c in contexts if types.get(c.type_id) == "node"), execution.type)
        run_id = next((c.name for c in contexts if types.get(c.type_id) == "pipeline_run"), "?")
        events = store.get_events_by_execution_ids([execution.id])
        output_ids = [e.artifact_id for e in events if e.type in (
            metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT, metadata_store_pb2.Event.PENDING_OUTPUT)]
        outputs = store.get_artifacts_by_id(output_ids) if output_ids else []
        for artifact in outputs:
            if artifact.state != metadata_store_pb2.Artifact.LIVE:
                artifact.state = metadata_store_pb2.Artifact.ABANDONED
        if outputs:
            store.put_artifacts(outputs)
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
        execution.custom_properties[ABANDONED_PROPERTY].string_value = (
            f"left unfinished by run {run_id}, whose process died; marked when a later run started "
            f"({time.strftime('%Y-%m-%d %H:%M:%S')})")
        store.put_executions([execution])
        found.append(AbandonedExecution(execution.id, node, run_id, [a.uri for a in outputs]))
    return found
