"""The ``tinyml-tfx`` command line: one verb per user task, each a thin layer over a library call.

Exit codes: 0 done; 1 the pipeline ran and failed (e.g. data anomalies); 2 a usage
or input mistake (bad config, missing data), reported as one paragraph.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from typing import Optional

import click

from pipeline import config as config_lib
from pipeline.ui import devices_cli, kubeflow_cli, registry_cli
from pipeline.ui.cli_common import (EXIT_FAILED, EXIT_USAGE, config_option, fail, load, run_option, run_summary,
                                    workdir_option)


def _log_to_file(workdir: str, progress_handler: logging.Handler) -> str:
    from absl import logging as absl_logging

    log_dir = os.path.join(workdir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, time.strftime("run-%Y%m%d-%H%M%S.log"))
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
    return path


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
    """Generate the config's synthetic dataset (keyword clips, or motion recordings for task motion)."""
    from pipeline.runners import local as run_local
    from pipeline.tasks.kws import generate, speech
    from pipeline.tasks.motion import generate as motion_generate

    config = load(config_path, workdir)
    if not config.uses_synthetic_data:
        fail(f"The config {config.source} names a dataset (data.root = {config.data.root}), so there "
              "is nothing to generate. Set data.root to null to use the synthetic dataset.", EXIT_USAGE)
    spec = run_local.generation_spec(config)
    try:
        if not force and generate.existing_fingerprint(config.data_root) == spec.fingerprint():
            click.echo(f"Synthetic data is up to date in {config.data_root}")
            return
        from pipeline.ui.progress import RunProgress

        unit = "recordings" if config.is_motion else "clips"
        generator = motion_generate if config.is_motion else generate
        with RunProgress() as progress:
            manifest = generator.generate_dataset(
                spec, config.data_root,
                progress=lambda done, total: progress.counted(f"generating {unit}", done, total))
    except speech.SpeechSynthesisError as err:
        fail(str(err), EXIT_USAGE)
    click.echo(f"Generated {manifest[unit]} synthetic {unit} in {config.data_root}")


@main.command("run")
@config_option
@workdir_option
def run_command(config_path: str, workdir: str) -> None:
    """Run the whole pipeline locally (LocalDagRunner, SQLite ML Metadata) and print a summary."""
    from components.data_validation_gate.executor import DataAnomaliesError
    from pipeline.runners import local as run_local
    from pipeline.tasks.kws import speech

    from pipeline.ui.progress import RunProgress

    config = load(config_path, workdir)
    try:
        run_local.check_config(config)
        if config.uses_synthetic_data:
            click.echo(f"Data: synthetic {'motion' if config.is_motion else 'keyword'} dataset in {config.data_root}")
            with RunProgress() as progress:
                generated = run_local.prepare_data(
                    config, progress=lambda done, total: progress.counted(
                        f"generating {'recordings' if config.is_motion else 'clips'}", done, total))
            click.echo("  generated" if generated else "  up to date")
        run_local.preflight(config)
    except (config_lib.ConfigError, speech.SpeechSynthesisError) as err:
        fail(str(err), EXIT_USAGE)

    progress = RunProgress()
    log_path = _log_to_file(os.path.abspath(workdir), progress.handler())
    click.echo(f"Running pipeline '{config.pipeline_name}' (full log: {log_path})")
    try:
        with progress:
            summary = run_local.run(config)
    except DataAnomaliesError as err:
        fail(str(err), EXIT_FAILED)
    except Exception as err:  # noqa: BLE001 - any component failure ends here, with its log
        logging.getLogger(__name__).error("Pipeline failed:\n%s", traceback.format_exc())
        fail(f"The pipeline failed: {type(err).__name__}: {err}. The full log, with the traceback, is "
              f"in {log_path}.", EXIT_FAILED)
    click.echo(summary.to_text())
    _write_report(summary, config)


def _write_report(summary, config) -> None:
    from pipeline.ui import report

    try:
        path = report.write_report(summary, config)
    except Exception as err:  # noqa: BLE001 - a report failure must not hide a finished run
        logging.getLogger(__name__).error("Report failed:\n%s", traceback.format_exc())
        click.echo(f"Warning: the report could not be written ({type(err).__name__}: {err}); the run itself is "
                   "unaffected.", err=True)
        return
    click.echo(f"Report:         {path}")


@main.command("report")
@config_option
@workdir_option
@run_option
def report_command(config_path: str, workdir: str, run_id: Optional[str]) -> None:
    """Write the HTML report and model card of a local run (default: the latest)."""
    config = load(config_path, workdir)
    _write_report(run_summary(config, run_id), config)


main.add_command(devices_cli.devices)
for _command in (registry_cli.push_command, registry_cli.list_command, registry_cli.promote_command,
                 registry_cli.rollback_command, registry_cli.pull_command, registry_cli.keys_group,
                 kubeflow_cli.compile_command, kubeflow_cli.submit_command):
    main.add_command(_command)

if __name__ == "__main__":
    main()
