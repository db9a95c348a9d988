"""What every ``tinyml-tfx`` verb shares: loading the config, one-paragraph errors, common options.

Exit codes: 0 done; 1 the pipeline ran and failed (e.g. data anomalies); 2 a usage
or input mistake (bad config, missing data), reported as one paragraph.
"""

from __future__ import annotations

import os
import sys
import textwrap
from typing import NoReturn, Optional

import click

from pipeline import config as config_lib

EXIT_FAILED = 1
EXIT_USAGE = 2


def paragraph(text: str) -> str:
    """``text`` wrapped at 100 columns; lines starting with two spaces are kept as they are."""
    return "\n".join(textwrap.fill(p, width=100) if not p.startswith("  ") else p
                     for p in text.splitlines())


def fail(message: str, code: int) -> NoReturn:
    """Prints ``message`` as one paragraph on stderr and exits with ``code``."""
    click.echo("Error: " + paragraph(message), err=True)
    sys.exit(code)


def load(config_path: str, workdir: str) -> config_lib.PipelineConfig:
    """The config at ``config_path`` with its run directories under ``workdir``, or a usage error."""
    try:
        return config_lib.load_config(config_path).with_workdir(workdir)
    except config_lib.ConfigError as err:
        fail(str(err), EXIT_USAGE)


config_option = click.option(
    "--config", "config_path", default=config_lib.DEFAULT_CONFIG, show_default=True,
    type=click.Path(dir_okay=False), help="The design requirements (YAML).")
workdir_option = click.option(
    "--workdir", default="work", show_default=True, type=click.Path(file_okay=False),
    help="Where data, artifacts, ML Metadata and logs go.")
run_option = click.option("--run", "run_id", default=None, metavar="RUN_ID",
                          help="A run id (as `run` prints it); default: the latest run.")


def run_summary(config: config_lib.PipelineConfig, run_id: Optional[str]):
    """The summary of run ``run_id`` (or the latest) of ``config``'s local pipeline, or a usage error."""
    from pipeline.runners import local as run_local

    if not os.path.exists(config.metadata_path):
        fail(f"No local run of '{config.pipeline_name}' (no ML Metadata at {config.metadata_path}). Run "
             "'tinyml-tfx run' first, or pass the --workdir of a run.", EXIT_USAGE)
    try:
        return run_local.summarise(config, wall_seconds=0.0, run_id=run_id)
    except run_local.UnknownRun as err:
        fail(str(err), EXIT_USAGE)
