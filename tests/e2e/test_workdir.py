"""One run per work directory, and what a killed run leaves behind is marked, not left RUNNING forever."""

import os
import signal
import subprocess
import sys
import time

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.runners import workdir
from tests.helpers import tiny_config, write_config_yaml
from tests.unit.test_cli import invoke

HOLD_LOCK = """
import sys, time
from pipeline.runners import workdir
with workdir.WorkdirLock(sys.argv[1], "holder-run"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _store(path: str) -> metadata_store.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = path
    return metadata_store.MetadataStore(connection)


def test_a_second_run_on_a_locked_workdir_is_refused_naming_the_holder(tiny_dataset, tmp_path):
    config = tiny_config(str(tmp_path / "w"), tiny_dataset)
    path = write_config_yaml(config, str(tmp_path / "tiny.yaml"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, config.workdir], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = invoke("run", "--config", path, "--workdir", config.workdir)
        assert result.exit_code == 2, result.output
        message = " ".join(result.output.split())  # the paragraph is wrapped for the terminal
        assert f"in use by run holder-run (PID {holder.pid}" in message and "--wait" in message
        assert not os.path.exists(config.metadata_path)  # refused before anything ran
    finally:
        holder.kill()
        holder.wait()
    with workdir.WorkdirLock(config.workdir, "next"):  # the kernel released the dead holder's lock
        assert workdir.read_holder(os.path.join(config.workdir, workdir.LOCK_FILE)).run_id == "next"


def test_a_killed_run_is_marked_on_the_next_start_and_cannot_be_reported(tiny_dataset, tmp_path):
    config = tiny_config(str(tmp_path / "w"), tiny_dataset)
    path = write_config_yaml(config, str(tmp_path / "tiny.yaml"))
    run = subprocess.Popen(["tinyml-tfx", "run", "--config", path, "--workdir", config.workdir],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    running = None
    try:
        deadline = time.time() + 600
        while running is None and time.time() < deadline and run.poll() is None:
            time.sleep(1)
            if os.path.exists(config.metadata_path):
                try:
                    running = next((e for e in _store(config.metadata_path).get_executions()
                                    if e.last_known_state == metadata_store_pb2.Execution.RUNNING
                                    and e.type.endswith("Trainer")), None)
                except Exception:  # noqa: BLE001 - the run may be writing the store at that instant
                    running = None
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert running is not None, "the run never reached the Trainer"
    store = _store(config.metadata_path)
    run_id = next(c.name for c in store.get_contexts_by_execution(running.id)
                  if store.get_context_types_by_id([c.type_id])[0].name == "pipeline_run")

    report = invoke("report", "--config", path, "--workdir", config.workdir, "--run", run_id)
    message = " ".join(report.output.split())
    assert report.exit_code == 1 and "did not finish" in message and "Trainer (running)" in message
    assert not os.path.exists(os.path.join(config.workdir, "reports", run_id.replace(":", "-"), "model_card.md"))

    with workdir.WorkdirLock(config.workdir, "next-run"):
        marked = workdir.mark_abandoned_executions(config.metadata_path)
    assert [(m.execution_id, m.run_id) for m in marked] == [(running.id, run_id)]
    execution = _store(config.metadata_path).get_executions_by_id([running.id])[0]
    assert execution.last_known_state == metadata_store_pb2.Execution.CANCELED
    assert "whose process died" in execution.custom_properties[workdir.ABANDONED_PROPERTY].string_value
    assert workdir.mark_abandoned_executions(config.metadata_path) == []  # marked once


def test_wait_takes_the_lock_when_the_holder_finishes(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK.replace("120", "3"), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    start = time.monotonic()
    with pytest.raises(workdir.WorkdirBusy):
        workdir.WorkdirLock(str(tmp_path), "impatient").__enter__()
    with workdir.WorkdirLock(str(tmp_path), "waiter", wait=True):
        assert time.monotonic() - start > 2.0  # it waited for the holder's three seconds to end
    holder.wait()
