"""The ``tinyml-tfx`` command line: one verb per user task, each a thin layer over a library call.

Exit codes: 0 done; 1 the pipeline ran and failed (e.g. data anomalies); 2 a usage
or input mistake (bad config, missing data), reported as one paragraph.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from typing import Iterator, Optional, TextIO

import click

from pipeline import config as config_lib
from pipeline.tasks.base import DataGenerationError
from pipeline.ui import devices_cli, kubeflow_cli, monitor_cli, registry_cli, stream_cli
from pipeline.ui.cli_common import (EXIT_FAILED, EXIT_USAGE, config_option, fail, load, run_option, run_summary,
                                    workdir_option)


def _log_path(workdir: str, run_id: str) -> str:
    """Where the run ``run_id`` logs: ``WORKDIR/logs/run-<run id>.log``."""
    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    return os.path.join(log_dir, f"run-{run_id.replace(':', '-')}.log")


def _log_to_file(path: str, progress_handler: logging.Handler) -> None:
    """Sends every log record to ``path``, and the progress events among them to the console."""
    from absl import logging as absl_logging

    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.use_absl_handler()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(file_handler)
    root.addHandler(progress_handler)
    root.setLevel(logging.INFO)
    # TensorFlow gives its logger a console handler of its own; send it to the file too.
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    tf_logger.propagate = True


@contextlib.contextmanager
def _native_output_to(path: str) -> Iterator[TextIO]:
    """Sends what is written to file descriptors 1 and 2 during the block into ``path``.

    TensorFlow's C++ logging (absl, oneDNN, CUDA notices), TFLite's XNNPACK notices and
    Python warnings write there, interleaved with the live progress; they belong in the
    run's log. Yields the stream the console should use: the terminal, kept aside.
    """
    try:
        sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. click's test runner): leave fds alone
        yield sys.stdout
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding="utf-8")
    log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [log_fd]:
            os.close(fd)
        terminal.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """tinyml-tfx: a TFX pipeline from raw sensor data to a microcontroller-ready model."""


@main.group()
def data() -> None:
    """Datasets: generate the synthetic default."""


@data.command("generate")
@config_option
@workdir_option
@click.option("--force", is_flag=True, help="Regenerate even when the data is up to date.")
def data_generate(config_path: str, workdir: str, force: bool) -> None:
    """Generate the config's synthetic dataset (keyword clips, motion recordings: the task family's)."""
    from pipeline.runners import local as run_local
    from pipeline.tasks.common import datasets
    from pipeline.ui.progress import RunProgress

    config = load(config_path, workdir)
    if not config.uses_synthetic_data:
        fail(f"The config {config.source} names a dataset (data.root = {config.data.root}), so there "
             "is nothing to generate. Set data.root to null to use the synthetic dataset.", EXIT_USAGE)
    unit = config.family.data_unit
    try:
        with RunProgress() as progress:
            generated = run_local.prepare_data(
                config, force=force, progress=lambda done, total: progress.counted(f"generating {unit}", done, total))
    except (config_lib.ConfigError, DataGenerationError) as err:
        fail(str(err), EXIT_USAGE)
    if not generated:
        click.echo(f"Synthetic data is up to date in {config.data_root}")
        return
    count = datasets.read_manifest(config.data_root).get(unit, "?")
    click.echo(f"Generated {count} synthetic {unit} in {config.data_root}")


@main.command("run")
@config_option
@workdir_option
@click.option("--wait", is_flag=True, help="When another run holds the work directory, wait for it to finish "
              "instead of stopping.")
def run_command(config_path: str, workdir: str, wait: bool) -> None:
    """Run the whole pipeline locally (LocalDagRunner, SQLite ML Metadata) and print a summary."""

    click.echo(_locked_run(load(config_path, workdir), wait))


def _locked_run(config, wait: bool, until: Optional[str] = None):
    """Runs the pipeline (up to ``until``) holding the work directory's lock; returns the summary text,
    or ends the process with one paragraph."""
    from pipeline.runners import workdir as workdir_lib

    run_id = workdir_lib.new_run_id()
    try:
        with workdir_lib.WorkdirLock(config.workdir, run_id, wait=wait) as lock:
            log_path = _log_path(config.workdir, run_id)
            # From here on, what TensorFlow and other native code print goes to the run's log; the
            # person at the terminal sees the progress, the summary and, if it comes, one paragraph.
            with _native_output_to(log_path) as terminal:
                outcome = _run_holding(config, run_id, lock, log_path, terminal, until)
    except workdir_lib.WorkdirBusy as err:
        fail(str(err), EXIT_USAGE)
    if isinstance(outcome, tuple):
        fail(*outcome)
    return outcome


def _run_holding(config, run_id: str, lock, log_path: str, terminal: TextIO, until: Optional[str] = None):
    """The run, while this process holds the work directory's lock and native output goes to the log.

    Returns:
        The text to print when the run finished (summary and report path), or (message, exit code).
    """
    from rich.console import Console

    from pipeline.runners import local as run_local
    from pipeline.ui.progress import RunProgress

    console = Console(file=terminal, highlight=False, soft_wrap=True)
    try:
        run_local.check_config(config)
        if config.uses_synthetic_data:
            unit = config.family.data_unit
            console.print(f"Data: synthetic {config.task} dataset in {config.data_root}")
            with RunProgress(console) as progress:
                generated = run_local.prepare_data(
                    config, progress=lambda done, total: progress.counted(f"generating {unit}", done, total))
            console.print("  generated" if generated else "  up to date")
        run_local.preflight(config)
    except (config_lib.ConfigError, DataGenerationError) as err:
        return str(err), EXIT_USAGE

    console.print(f"Running pipeline '{config.pipeline_name}', run {run_id} (full log: {log_path})")
    progress = RunProgress(console)
    _log_to_file(log_path, progress.handler())
    try:
        with progress:
            summary = run_local.run(config, run_id=run_id, lock=lock, until=until)
    except Exception as err:  # noqa: BLE001 - any component failure ends here, with its log
        logging.getLogger(__name__).error("Pipeline failed:\n%s", traceback.format_exc())
        return run_local.failure_message(config, run_id, err, log_path), EXIT_FAILED
    if until:
        return summary
    return summary.to_text() + "\n" + _write_report(summary, config)


def _write_report(summary, config) -> str:
    """Writes the run's report and model card; returns the line saying where (or why not)."""
    from pipeline.ui import report

    try:
        path = report.write_report(summary, config)
    except Exception as err:  # noqa: BLE001 - a report failure must not hide a finished run
        logging.getLogger(__name__).error("Report failed:\n%s", traceback.format_exc())
        return (f"Warning: the report could not be written ({type(err).__name__}: {err}); the run itself is "
                "unaffected.")
    return f"Report:         {path}"


@main.command("search")
@config_option
@workdir_option
@click.option("--output", default=None, type=click.Path(file_okay=False),
              help="Folder for the winner's best_hyperparameters.txt (default: the config's training.hyperparameters).")
@click.option("--wait", is_flag=True, help="Wait for another run holding the work directory.")
def search_command(config_path: str, workdir: str, output: Optional[str], wait: bool) -> None:
    """Run only the hardware-aware model search and write the winner's hyperparameters for the repository."""
    import dataclasses
    import shutil

    from pipeline import pipeline as tinyml_pipeline

    config = load(config_path, workdir)
    output = output or config.training.hyperparameters
    if not output:
        fail(f"The config {config.source} names no training.hyperparameters folder to write the winner to; give "
             "--output DIR (and point training.hyperparameters at it to train that model).", EXIT_USAGE)
    if not config.family.search_module:
        fail(f"The task family '{config.task}' has no search space (TaskFamily.search_module).", EXIT_USAGE)
    searching = dataclasses.replace(config, search=dataclasses.replace(config.search, enabled=True))
    summary = _locked_run(searching, wait, until=tinyml_pipeline.MODEL_SEARCH)
    best = os.path.join(summary.artifact_uris[tinyml_pipeline.MODEL_SEARCH]["best_hyperparameters"],
                        "best_hyperparameters.txt")
    os.makedirs(output, exist_ok=True)
    shutil.copyfile(best, os.path.join(output, "best_hyperparameters.txt"))
    click.echo(summary.to_text().splitlines()[0])
    click.echo(next(line for line in summary.to_text().splitlines() if line.startswith("Model search:")))
    click.echo(f"Winner's hyperparameters: {os.path.join(output, 'best_hyperparameters.txt')}")


@main.command("report")
@config_option
@workdir_option
@run_option
def report_command(config_path: str, workdir: str, run_id: Optional[str]) -> None:
    """Write the HTML report and model card of a local run (default: the latest)."""
    config = load(config_path, workdir)
    summary = run_summary(config, run_id)
    if summary.unfinished or not summary.quantization:
        stopped = ", ".join(f"{c.node_id} ({c.state})" for c in summary.unfinished) or "before the quantizer"
        fail(f"Run {summary.run_id} of '{config.pipeline_name}' did not finish: it stopped at {stopped}, so there is "
             "no model to report on and no model card is written. Its log is in "
             f"{os.path.join(config.workdir, 'logs')}; fix what it names and run again.", EXIT_FAILED)
    click.echo(_write_report(summary, config))


main.add_command(devices_cli.devices)
data.add_command(stream_cli.data_streams_command)
for _command in (stream_cli.stream_eval_command, registry_cli.push_command, registry_cli.list_command,
                 registry_cli.promote_command, registry_cli.rollback_command, registry_cli.pull_command,
                 registry_cli.keys_group,
                 kubeflow_cli.compile_command, kubeflow_cli.submit_command,
                 monitor_cli.telemetry_group, monitor_cli.monitor_command, monitor_cli.fleet_group):
    main.add_command(_command)

if __name__ == "__main__":
    main()
