"""Field monitoring verbs: ``telemetry ingest`` (a batch becomes a span) and ``monitor`` (drift -> retrain?)."""

from __future__ import annotations

import os
import sys

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


@telemetry_group.command("serve")
@config_option
@workdir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8750, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="A file holding the secret gateways send as 'Authorization: Bearer <token>' (needed off loopback).")
def serve_command(config_path: str, workdir: str, host: str, port: int, token_file) -> None:
    """Serve POST /v1/telemetry for gateways: each batch (JSON lines, or a tar of a batch folder) becomes the next
    span of the field dataset, as `telemetry ingest` makes it."""
    from components.telemetry import http_ingest
    from pipeline import monitoring

    config = load(config_path, workdir)
    token = None
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read()
        except OSError as err:
            fail(f"The token file {token_file} cannot be read ({err.strerror}); pass a readable file.", EXIT_USAGE)
    dataset = monitoring.dataset_dir(config, monitoring.FIELD_DATASET)
    try:
        server = http_ingest.TelemetryServer(dataset, monitoring.expectations(config), host, port, token,
                                             log=click.echo)
    except http_ingest.HttpIngestError as err:
        fail(str(err), EXIT_USAGE)
    except OSError as err:
        fail(f"Cannot listen on {host}:{port} ({err.strerror}); choose another --port or --host.", EXIT_USAGE)
    click.echo(f"Telemetry endpoint: http://{host}:{server.server_address[1]}{http_ingest.PATH} -> {dataset}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command("monitor")
@config_option
@workdir_option
@click.option("--span", type=int, default=None, help="The field span to judge (default: the latest).")
@click.option("--retrain-exit-code", type=click.IntRange(3, 125), default=None,
              help="Exit with this code when the decision is to retrain (for a scheduler that then submits the "
                   "training run; kubernetes/base/continuous-training.yaml uses 10).")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write the monitoring report (WORKDIR/reports/monitoring/monitoring.html).")
def monitor_command(config_path: str, workdir: str, span, retrain_exit_code, report) -> None:
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
    for warning in decision.get("warnings", []):
        click.echo(f"Warning: {warning}")
    click.echo(f"Decision: {os.path.join(decision['uri'], 'decision.json')}")
    if report:
        from pipeline.ui import monitoring_report

        click.echo(f"Report:   {monitoring_report.write(config, os.path.join(config.workdir, 'reports', 'monitoring'))}")
    if decision["retrain"] and retrain_exit_code is not None:
        sys.exit(retrain_exit_code)


@click.group("fleet")
def fleet_group() -> None:
    """The fleet simulator: devices running the released model on TFLite Micro, reporting telemetry."""


def _released_model(config, run_id, model_path):
    """The int8 model and the device's post-processing: a run's quantized model and its streaming settings
    (the latest run by default), or a .tflite file with the config's post-processing."""
    from components.errors import PipelineInputError
    from components.streaming_evaluator import recognize
    from pipeline import fleet
    from pipeline.ui.cli_common import run_summary

    if model_path:
        with open(model_path, "rb") as f:
            model = f.read()
        s = config.streaming
        return model, fleet.DeviceSettings(inference_stride_ms=s.inference_stride_ms or 100,
                                           recognition=recognize.RecognitionSettings(
                                               s.average_window_ms, suppression_ms=s.suppression_ms,
                                               minimum_count=s.minimum_count),
                                           match_tolerance_ms=s.tolerance_ms)
    summary = run_summary(config, run_id)
    try:
        return fleet.released_model(summary)
    except PipelineInputError as err:
        fail(str(err), EXIT_USAGE)


@fleet_group.command("simulate")
@config_option
@workdir_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where the day-NNN/ batches (and reference/) go.")
@click.option("--run", "run_id", default=None, help="The run whose model the fleet runs (default: the latest).")
@click.option("--model", "model_path", default=None, type=click.Path(dir_okay=False),
              help="An int8 .tflite instead of a run's model.")
@click.option("--devices", default=20, show_default=True)
@click.option("--days", default=10, show_default=True)
@click.option("--shift", default="", help="A field shift from --shift-day on (keyword spotting: rain).")
@click.option("--shift-day", type=int, default=None)
@click.option("--shifted-fraction", default=1.0, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--seconds-per-day", default=60.0, show_default=True, help="Audio each device-day summarises.")
@click.option("--pool-minutes", default=2.0, show_default=True, help="Audio rendered and run per distribution.")
@click.option("--samples", "samples_per_device_day", default=1, show_default=True,
              help="Labelled one-second windows each device uploads per day.")
@click.option("--reference-days", default=3, show_default=True,
              help="Days of reference telemetry (other devices, no shift) written to reference/.")
@click.option("--confirm-rate", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Probability that a user confirms a correct detection (an assumption about users).")
@click.option("--false-confirm-rate", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Probability that a false accept is confirmed anyway (a user acting on a command they did not give).")
def simulate_command(config_path, workdir, out_dir, run_id, model_path, devices, days, shift, shift_day,
                     shifted_fraction, seed, seconds_per_day, pool_minutes, samples_per_device_day,
                     reference_days, confirm_rate, false_confirm_rate) -> None:
    """Simulate a fleet running the released model on TFLite Micro over synthetic audio; write a telemetry batch
    per day (ingest them with `tinyml-tfx telemetry ingest`). Field samples carry the simulator's ground truth."""
    from components.errors import PipelineInputError
    from pipeline import fleet

    config = load(config_path, workdir)
    model, device = _released_model(config, run_id, model_path)
    spec = fleet.FleetSpec(devices=devices, days=days, shift=shift, shift_day=shift_day,
                           shifted_fraction=shifted_fraction, seed=seed, seconds_per_day=seconds_per_day,
                           pool_minutes=pool_minutes, samples_per_device_day=samples_per_device_day,
                           confirm_rate=confirm_rate, false_confirm_rate=false_confirm_rate)
    try:
        manifest = fleet.simulate(config, model, spec, device, out_dir, reference_days=reference_days, log=click.echo)
    except (PipelineInputError, NotImplementedError) as err:
        fail(str(err), EXIT_USAGE)
    click.echo(f"{devices} device(s) x {days} day(s){f', {shift} from day {shift_day}' if shift else ''}: "
               f"{len(manifest['days'])} batches in {out_dir}" +
               (f"; reference telemetry in {manifest['reference']}" if manifest["reference"] else ""))


@fleet_group.command("collect")
@config_option
@workdir_option
@click.option("--shift", required=True, help="The field condition to collect (keyword spotting: rain).")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Audio the campaign records.")
@click.option("--voices", type=click.IntRange(min=1), default=20, show_default=True,
              help="New voices (speakers) the campaign hears.")
@click.option("--seed", default=1, show_default=True)
@click.option("--span", type=click.IntRange(min=0), default=None,
              help="The span to write (default: one after the newest span folder of data.root).")
def collect_command(config_path, workdir, shift, minutes, voices, seed, span) -> None:
    """Collect labelled field data under a shift and write it as the next training span (data.root/span-N), for
    a config with data.training_spans. Labels are the simulator's ground truth, and the span's DATASET.json says so."""
    from components.errors import PipelineInputError
    from pipeline.tasks.common import datasets

    config = load(config_path, workdir)
    if not config.data.training_spans or config.uses_synthetic_data:
        fail(f"Config file {config.source}: collecting a training span needs data.root (a folder of span-0, "
             "span-1, ... datasets) and data.training_spans > 0. Fix: set both (data.training_spans: 2 trains on "
             "the newest two spans).", EXIT_USAGE)
    _check_span_root(config)
    existing = datasets.span_folders(config.data_root)
    number = span if span is not None else (max(existing) + 1 if existing else 0)
    if number in existing:
        fail(f"{existing[number]} exists; spans are append-only. Fix: pass another --span, or leave it out to "
             "write the next one.", EXIT_USAGE)
    out_dir = os.path.join(config.data_root, datasets.span_folder(number))
    try:
        manifest = config.family.write_field_span(config, shift, minutes, voices, seed, out_dir, log=click.echo)
    except (PipelineInputError, NotImplementedError) as err:
        fail(str(err), EXIT_USAGE)
    counts = manifest.get("examples_before_sampling", {})
    click.echo(f"Span {number}: {manifest.get('clips', '?')} labelled clips in {out_dir} (" + ", ".join(
        f"{split} {sum(c.values())}" for split, c in counts.items()) + f"); labels: {manifest.get('label_source')}")


@telemetry_group.command("to-span")
@config_option
@workdir_option
@click.option("--from-span", type=int, default=None,
              help="The first field telemetry span to read (default: the one after the last made into a training span).")
@click.option("--to-span", type=int, default=None, help="The last field telemetry span to read (default: the newest).")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False), default=None,
              help="Your labelling step's labels: a CSV with columns span,file,label (the telemetry span, the sample "
                   "record's file, the class).")
@click.option("--trust-uploaded-labels", is_flag=True,
              help="Use the 'label' the sample records were uploaded with. Only when the gateway's labels are your "
                   "own labelling step's: a device or gateway can claim any label.")
@click.option("--synthetic", is_flag=True, help="Say in the span's DATASET.json that the windows are simulated.")
def to_span_command(config_path, workdir, from_span, to_span, labels_file, trust_uploaded_labels, synthetic) -> None:
    """Write labelled windows of field telemetry spans (sample records) as the next training span (data.root/span-N),
    for a config with data.training_spans; split by device, a device keeping its split from earlier spans."""
    from components.telemetry import ingest
    from pipeline import monitoring
    from pipeline.tasks.common import datasets

    config = load(config_path, workdir)
    _check_span_root(config)
    if (labels_file is None) == (not trust_uploaded_labels):
        fail("Say where the labels come from: --labels FILE (a CSV of span,file,label your labelling step wrote), or "
             "--trust-uploaded-labels to use the labels the sample records were uploaded with (anyone holding the "
             "gateway token can claim any label, so only when the gateway is your labelling step).", EXIT_USAGE)
    labels = _read_labels(labels_file) if labels_file else None
    manifests = datasets.dataset_manifests(config.data_root, spans=True)
    if from_span is None:
        converted = [s for m in manifests for s in m.get("telemetry_spans", []) if isinstance(s, int)]
        from_span = max(converted) + 1 if converted else 1
    field = monitoring.dataset_dir(config, monitoring.FIELD_DATASET)
    chosen = [s for s in ingest.spans(field) if s >= from_span and (to_span is None or s <= to_span)]
    samples = []
    for span in chosen:
        folder = ingest.span_dir(field, span)
        for row in ingest.read_span(field, span, ingest.EVENTS_FILE):
            if row["type"] != "sample":
                continue
            label = labels.get((span, row["file"])) if labels is not None else row.get("label")
            if label:
                source = f"labels file {os.path.basename(labels_file)}" if labels is not None else \
                    f"uploaded with the telemetry ({row.get('label_source') or 'source not said'})"
                samples.append(datasets.LabelledSample(path=os.path.join(folder, ingest.SAMPLES_DIR, row["file"]),
                                                       device_id=row["device_id"], label=label, label_source=source,
                                                       name=row["file"]))
    if not samples:
        fail(f"No labelled sample in field telemetry spans {chosen or 'none'} of {field} (from span {from_span}): "
             + ("the labels file names none of their sample records." if labels is not None else
                "label the uploaded windows and ingest them first."), EXIT_USAGE)
    existing = datasets.span_folders(config.data_root)
    number = max(existing) + 1 if existing else 0
    out_dir = os.path.join(config.data_root, datasets.span_folder(number))
    try:
        manifest = config.family.write_sample_span(
            config, samples, out_dir, synthetic=synthetic, log=click.echo,
            known_splits=datasets.recorded_splits(manifests, "devices"),
            source={"telemetry_spans": chosen, "labels": "labels file" if labels is not None else
                    "uploaded labels, trusted by --trust-uploaded-labels"})
    except (ValueError, NotImplementedError) as err:
        fail(str(err), EXIT_USAGE)
    click.echo(f"Span {number}: {manifest['clips']} labelled clips from telemetry spans {chosen[0]}-{chosen[-1]} in "
               f"{out_dir} ({len(manifest['skipped'])} skipped; labels: {', '.join(manifest['label_source']) or '?'})")


def _check_span_root(config) -> None:
    """Spans are written with the local file system: refuse an object-store data.root rather than write beside it."""
    if "://" in str(config.data_root):
        fail(f"Config file {config.source}: data.root is {config.data_root}; writing a training span to an object "
             "store is not supported. Fix: write the span to a local data.root and copy it to the bucket.", EXIT_USAGE)


def _read_labels(path: str):
    """(telemetry span, file) -> label from the labelling step's CSV (columns span,file,label)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        fail(f"Labels file {path} cannot be read ({err}). Fix: a UTF-8 CSV with the columns span,file,label.",
             EXIT_USAGE)
    labels = {}
    for number, row in enumerate(rows, start=2):
        span, name, label = (row.get(k) for k in ("span", "file", "label"))
        if not (span and span.strip().isascii() and span.strip().isdigit() and name and label):
            fail(f"Labels file {path}, line {number}: expected span (a number), file and label; got {row}. Fix the "
                 "line (columns span,file,label).", EXIT_USAGE)
        labels[(int(span), name.strip())] = label.strip()
    return labels
