"""Field monitoring verbs: ``telemetry ingest`` (a batch becomes a span) and ``monitor`` (drift -> retrain?)."""

from __future__ import annotations

import os

import click

from pipeline.ui.cli_common import EXIT_FAILED, EXIT_USAGE, config_option, fail, load, workdir_option

SHOWN_PROBLEMS = 5


@click.group("telemetry")
def telemetry_group() -> None:
    """Device telemetry: ingest batches as spans of the field (or reference) dataset."""


@telemetry_group.command("ingest")
@click.argument("batch_dir", type=click.Path(file_okay=False))
@config_option
@workdir_option
@click.option("--reference", is_flag=True,
              help="Ingest into the reference dataset (the released model's telemetry on its training distribution).")
def ingest_command(batch_dir: str, config_path: str, workdir: str, reference: bool) -> None:
    """Turn a batch of telemetry (*.jsonl records and a samples/ folder) into the next span; malformed lines
    are skipped and reported by file and line."""
    from components.telemetry import ingest
    from pipeline import monitoring

    config = load(config_path, workdir)
    dataset = monitoring.dataset_dir(config, monitoring.REFERENCE_DATASET if reference else monitoring.FIELD_DATASET)
    try:
        result = ingest.ingest(batch_dir, dataset, monitoring.expectations(config))
    except ingest.IngestError as err:
        fail(str(err), EXIT_USAGE)
    click.echo(f"Span {result.span} of {dataset}: {result.summaries} summary record(s), {result.events} event(s), "
               f"{result.samples} sample file(s).")
    if result.skipped:
        click.echo(f"Skipped {result.skipped} malformed record(s):")
        for problem in result.problems[:SHOWN_PROBLEMS]:
            click.echo(f"  {problem}")
        if result.skipped > SHOWN_PROBLEMS:
            click.echo(f"  ... every reason: {os.path.join(result.span_dir, ingest.REPORT_FILE)}")


@click.command("monitor")
@config_option
@workdir_option
@click.option("--span", type=int, default=None, help="The field span to judge (default: the latest).")
def monitor_command(config_path: str, workdir: str, span) -> None:
    """Run the monitoring pipeline: the field's telemetry against the reference's (TFDV drift comparators);
    prints whether to retrain and why."""
    from components.telemetry import ingest
    from pipeline import monitoring

    config = load(config_path, workdir)
    for dataset in (monitoring.FIELD_DATASET, monitoring.REFERENCE_DATASET):
        folder = monitoring.dataset_dir(config, dataset)
        available = ingest.spans(folder)
        if not available:
            fail(f"No {dataset} telemetry at {folder}. Ingest a batch first: tinyml-tfx telemetry ingest DIR "
                 f"--workdir {workdir}{' --reference' if dataset == monitoring.REFERENCE_DATASET else ''}.",
                 EXIT_USAGE)
        if dataset == monitoring.FIELD_DATASET and span is not None and span not in available:
            fail(f"The field telemetry at {folder} has no span {span}; it has {', '.join(map(str, available))}.",
                 EXIT_USAGE)
    try:
        decision = monitoring.run(config, span)
    except RuntimeError as err:
        fail(f"The monitoring run failed: {err}", EXIT_FAILED)
    verdict = "RETRAIN" if decision["retrain"] else "no retrain"
    click.echo(f"Monitoring '{config.pipeline_name}', field span {decision.get('field_span')}: {verdict}: "
               f"{decision['reason']}")
    click.echo(f"Decision: {os.path.join(decision['uri'], 'decision.json')}")
