"""The ``tinyml-tfx`` command line.

Exit codes: 0 done; 1 the pipeline ran and failed (e.g. data anomalies); 2 a usage
or input mistake (bad config, missing data), reported as one paragraph.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import textwrap
import time
import traceback
from typing import Optional

import click

from pipeline import config as config_lib

EXIT_FAILED = 1
EXIT_USAGE = 2


def _paragraph(text: str) -> str:
    return "\n".join(textwrap.fill(p, width=100) if not p.startswith("  ") else p
                     for p in text.splitlines())


def _fail(message: str, code: int) -> None:
    click.echo("Error: " + _paragraph(message), err=True)
    sys.exit(code)


def _load(config_path: str, workdir: str) -> config_lib.PipelineConfig:
    try:
        return config_lib.load_config(config_path).with_workdir(workdir)
    except config_lib.ConfigError as err:
        _fail(str(err), EXIT_USAGE)


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


config_option = click.option(
    "--config", "config_path", default=config_lib.DEFAULT_CONFIG, show_default=True,
    type=click.Path(dir_okay=False), help="The design requirements (YAML).")
workdir_option = click.option(
    "--workdir", default="work", show_default=True, type=click.Path(file_okay=False),
    help="Where data, artifacts, ML Metadata and logs go.")


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
    from pipeline import run_local
    from pipeline.tasks.kws import generate, speech
    from pipeline.tasks.motion import generate as motion_generate

    config = _load(config_path, workdir)
    if not config.uses_synthetic_data:
        _fail(f"The config {config.source} names a dataset (data.root = {config.data.root}), so there "
              "is nothing to generate. Set data.root to null to use the synthetic dataset.", EXIT_USAGE)
    spec = run_local.generation_spec(config)
    try:
        if not force and generate.existing_fingerprint(config.data_root) == spec.fingerprint():
            click.echo(f"Synthetic data is up to date in {config.data_root}")
            return
        from pipeline.progress import RunProgress

        unit = "recordings" if config.is_motion else "clips"
        generator = motion_generate if config.is_motion else generate
        with RunProgress() as progress:
            manifest = generator.generate_dataset(
                spec, config.data_root,
                progress=lambda done, total: progress.counted(f"generating {unit}", done, total))
    except speech.SpeechSynthesisError as err:
        _fail(str(err), EXIT_USAGE)
    click.echo(f"Generated {manifest[unit]} synthetic {unit} in {config.data_root}")


@main.command("run")
@config_option
@workdir_option
def run_command(config_path: str, workdir: str) -> None:
    """Run the whole pipeline locally (LocalDagRunner, SQLite ML Metadata) and print a summary."""
    from components.data_validation_gate.executor import DataAnomaliesError
    from pipeline import run_local
    from pipeline.tasks.kws import speech

    from pipeline.progress import RunProgress

    config = _load(config_path, workdir)
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
        _fail(str(err), EXIT_USAGE)

    progress = RunProgress()
    log_path = _log_to_file(os.path.abspath(workdir), progress.handler())
    click.echo(f"Running pipeline '{config.pipeline_name}' (full log: {log_path})")
    try:
        with progress:
            summary = run_local.run(config)
    except DataAnomaliesError as err:
        _fail(str(err), EXIT_FAILED)
    except Exception as err:  # noqa: BLE001 - any component failure ends here, with its log
        logging.getLogger(__name__).error("Pipeline failed:\n%s", traceback.format_exc())
        _fail(f"The pipeline failed: {type(err).__name__}: {err}. The full log, with the traceback, is "
              f"in {log_path}.", EXIT_FAILED)
    click.echo(summary.to_text())
    _write_report(summary, config)


def _write_report(summary, config) -> None:
    from pipeline import report

    try:
        path = report.write_report(summary, config)
    except Exception as err:  # noqa: BLE001 - a report failure must not hide a finished run
        logging.getLogger(__name__).error("Report failed:\n%s", traceback.format_exc())
        click.echo(f"Warning: the report could not be written ({type(err).__name__}: {err}); the run itself is "
                   "unaffected.", err=True)
        return
    click.echo(f"Report:         {path}")


run_option = click.option("--run", "run_id", default=None, metavar="RUN_ID",
                          help="A run id (as `run` prints it); default: the latest run.")


def _summary(config, run_id: Optional[str]):
    """The summary of run ``run_id`` (or the latest) of ``config``'s local pipeline, or a usage error."""
    from pipeline import run_local

    if not os.path.exists(config.metadata_path):
        _fail(f"No local run of '{config.pipeline_name}' (no ML Metadata at {config.metadata_path}). Run "
              "'tinyml-tfx run' first, or pass the --workdir of a run.", EXIT_USAGE)
    try:
        return run_local.summarise(config, wall_seconds=0.0, run_id=run_id)
    except run_local.UnknownRun as err:
        _fail(str(err), EXIT_USAGE)


@main.command("report")
@config_option
@workdir_option
@run_option
def report_command(config_path: str, workdir: str, run_id: Optional[str]) -> None:
    """Write the HTML report and model card of a local run (default: the latest)."""
    config = _load(config_path, workdir)
    _write_report(_summary(config, run_id), config)


@main.group()
def devices() -> None:
    """The board catalogue: list boards, check a .tflite model against them."""


@devices.command("list")
@click.option("--boards-dir", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A folder of extra board profiles (<name>.yaml); repeatable.")
def devices_list(boards_dir) -> None:
    """List the known boards with their flash, RAM and what the firmware reserves."""
    from components.mcu_size_gate import devices as catalogue_lib

    try:
        catalogue = catalogue_lib.load_catalogue(boards_dir)
    except catalogue_lib.DeviceProfileError as err:
        _fail(str(err), EXIT_USAGE)
    click.echo(f"{'board':<18} {'core':<14} {'MHz':>5} {'flash KiB':>10} {'RAM KiB':>8} {'reserved flash/RAM KiB':>23}")
    for p in catalogue.values():
        click.echo(f"{p.name:<18} {p.core:<14} {p.clock_mhz:>5.0f} {p.flash_bytes // 1024:>10} "
                   f"{p.ram_bytes // 1024:>8} {p.reserved_flash_bytes // 1024:>11}/{p.reserved_ram_bytes // 1024:<11}")


@devices.command("check")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--board", "boards", multiple=True, help="Board name(s); default: every known board.")
@click.option("--boards-dir", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A folder of extra board profiles (<name>.yaml); repeatable.")
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Also judge the estimated time per inference against this limit.")
def devices_check(model_file: str, boards, boards_dir, max_latency_ms) -> None:
    """Measure a .tflite model on TFLite Micro and judge it against boards: RAM, flash, latency.

    RAM is the measured tensor arena plus each board's reserve; flash is the model plus the
    TFLM runtime and the kernels of its ops plus the reserve; latency is estimated from the
    model's MACs with a cost model calibrated on published board measurements.
    """
    from components.mcu_size_gate import devices as catalogue_lib
    from components.mcu_size_gate import gate
    from components.tflite_quantizer import codegen, quantize

    try:
        catalogue = catalogue_lib.load_catalogue(boards_dir)
        targets = [catalogue_lib.get_profile(b, catalogue) for b in boards] or list(catalogue.values())
        with open(model_file, "rb") as f:
            model = f.read()
        analysis = gate.analyse(model, targets, max_latency_ms=max_latency_ms)
    except catalogue_lib.DeviceProfileError as err:
        _fail(str(err), EXIT_USAGE)
    except (quantize.QuantizationError, codegen.UnsupportedOpError, ValueError, RuntimeError) as err:
        _fail(f"Could not measure {model_file} on TFLite Micro: {err}", EXIT_USAGE)
    arena = analysis.arena
    click.echo(f"{model_file}: {analysis.model_bytes} bytes, {analysis.macs:,} MACs per inference, ops "
               + ", ".join(f"{o['name']} v{o['version']}" for o in analysis.ops))
    click.echo(f"Tensor arena: {arena.smallest_bytes} bytes (smallest that runs; recording allocator "
               f"{arena.recorded_total}: head {arena.recorded_head}, tail {arena.recorded_tail}; {arena.source})")
    click.echo(f"Code: TFLM runtime {analysis.runtime_bytes} B + kernels "
               + ", ".join(f"{op} {size}" for op, size in analysis.kernel_bytes.items())
               + f" B ({analysis.flash_source})")
    click.echo(f"  {'board':<18} {'RAM KiB':>17} {'flash KiB':>19} {'latency ms':>11} {'inf/s':>7}  verdict")
    for v in analysis.verdicts:
        latency_ms = "-" if v.latency_ms is None else f"{v.latency_ms:.1f}"
        rate = "-" if v.inferences_per_second is None else f"{v.inferences_per_second:.1f}"
        click.echo(f"  {v.board:<18} {v.ram_used / 1024:7.1f} / {v.ram_total / 1024:7.1f} "
                   f"{v.flash_used / 1024:8.1f} / {v.flash_total / 1024:8.1f} {latency_ms:>11} {rate:>7}  "
                   + ("fits" if v.fits else "NO: " + "; ".join(v.reasons)))


def _release_target(config_path: str, workdir: str, registry: Optional[str], repository: Optional[str]):
    """The store and repository a registry verb works on: the options, else the config's release section."""
    from components.ota_pusher import publish

    config = _load(config_path, workdir)
    registry = registry or config.release.registry
    repository = repository or config.repository
    try:
        return publish.open_store(registry, repository), repository, config
    except publish.PublishError as err:
        _fail(str(err), EXIT_USAGE)


registry_options = [
    click.option("--registry", default=None, help="OCI layout directory or http(s):// registry URL "
                 "(default: the config's release.registry, i.e. WORKDIR/registry). Credentials: "
                 "TINYML_TFX_REGISTRY_USERNAME/_PASSWORD or _TOKEN in the environment."),
    click.option("--repository", default=None, help="Repository in the registry (default: the pipeline name)."),
]


def _with_registry_options(command):
    for option in reversed(registry_options):
        command = option(command)
    return workdir_option(config_option(command))


def _registry_errors():
    from components.ota_pusher import channels, http_registry, oci_layout, publish, releases

    return (channels.ChannelError, http_registry.RegistryError, oci_layout.LayoutError, publish.PublishError,
            releases.ReleaseError)


@main.command("push")
@_with_registry_options
@click.option("--version", default=None, help="MAJOR.MINOR.PATCH; default: one patch above the newest.")
@click.option("--allow-unsigned", is_flag=True, help="Push without a signature (devices that verify refuse it).")
@run_option
def push_command(config_path, workdir, registry, repository, version, allow_unsigned, run_id) -> None:
    """Push a run's quantized model as a signed release (only if every gate blessed it)."""
    from components.ota_pusher import publish
    from pipeline import pipeline as kws_pipeline

    store, repository, config = _release_target(config_path, workdir, registry, repository)
    summary = _summary(config, run_id)
    gates = {"Evaluator": summary.blessed, "TFLiteQuantizer": summary.quantization.get("blessed"),
             "McuSizeGate": summary.size_gate.get("blessed")}
    refused = [name for name, blessed in gates.items() if not blessed]
    if refused:
        _fail(f"The model of run {summary.run_id} is not blessed by {', '.join(refused)}; it is not pushed. See "
              "`tinyml-tfx report` for why.", EXIT_FAILED)
    uris, ids = summary.artifact_uris, summary.artifact_ids
    lineage = publish.lineage(
        ids[kws_pipeline.QUANTIZER]["quantized_model"], ids[kws_pipeline.SIZE_GATE]["report"],
        ids[kws_pipeline.EVALUATOR]["blessing"], ids[kws_pipeline.QUANTIZER]["blessing"],
        ids[kws_pipeline.SIZE_GATE]["blessing"])
    try:
        files = publish.release_files(summary.quantization["uri"], uris[kws_pipeline.SIZE_GATE]["report"])
        annotations = publish.release_annotations(
            files, kws_pipeline.release_frontend_hash(config), config.pipeline_name, summary.run_id, lineage)
        publish.add_model_card(files, kws_pipeline.card_text(config), annotations)
        unsigned = allow_unsigned or config.release.allow_unsigned
        key = None if unsigned else publish.load_signing_key(config.release.signing_key_file)
        release = publish.publish(store, files, annotations, repository, key, unsigned, config.release.channel,
                                  actor=None, version=version)
    except _registry_errors() as err:
        _fail(str(err), EXIT_FAILED)
    click.echo(f"Pushed {store.root}:{release.version} ({release.digest}); on {config.release.channel} for "
               + ", ".join(publish.targets_of(release.annotations)))


@main.command("list")
@_with_registry_options
def list_command(config_path, workdir, registry, repository) -> None:
    """List the releases (with key annotations) and where each channel points."""
    from components.ota_pusher import channels, releases

    store, _, _ = _release_target(config_path, workdir, registry, repository)
    try:
        listing = channels.list_releases(store)
    except _registry_errors() as err:
        _fail(str(err), EXIT_FAILED)
    click.echo(f"Releases in {store.root}:")
    for v in listing["versions"]:
        a = v["annotations"]
        click.echo(f"  {v['version']:<9} {a.get(releases.MODEL_BYTES_ANNOTATION, '?'):>7} B  arena "
                   f"{a.get(releases.ARENA_ANNOTATION, '?'):>7} B  int8 acc {a.get(releases.INT8_ACCURACY_ANNOTATION, '?')}"
                   f"  targets {a.get(releases.TARGETS_ANNOTATION, '-')}  run {a.get(releases.RUN_ANNOTATION, '-')}")
    click.echo("Channels:")
    for tag, version in listing["channels"].items():
        click.echo(f"  {tag:<32} -> {version}")


@main.command("promote")
@_with_registry_options
@click.option("--device-class", required=True, help="Board name, e.g. nano33ble_sense.")
@click.option("--from", "source", default="canary", show_default=True)
@click.option("--to", "target", default="stable", show_default=True)
@click.option("--version", default=None, help="Version to promote (default: what --from points at).")
def promote_command(config_path, workdir, registry, repository, device_class, source, target, version) -> None:
    """Move a device class's stable channel to the canary's version; the move is recorded."""
    from components.ota_pusher import channels

    store, _, _ = _release_target(config_path, workdir, registry, repository)
    try:
        move = channels.promote(store, device_class, source, target, version)
    except _registry_errors() as err:
        _fail(str(err), EXIT_FAILED)
    click.echo(f"{channels.channel_tag(device_class, target)}: {move.previous or '(none)'} -> {move.version} "
               f"({move.who}, {move.when})")


@main.command("rollback")
@_with_registry_options
@click.option("--device-class", required=True)
@click.option("--channel", default="stable", show_default=True)
def rollback_command(config_path, workdir, registry, repository, device_class, channel) -> None:
    """Point a channel back at its previous version; the move is recorded."""
    from components.ota_pusher import channels

    store, _, _ = _release_target(config_path, workdir, registry, repository)
    try:
        move = channels.rollback(store, device_class, channel)
    except _registry_errors() as err:
        _fail(str(err), EXIT_FAILED)
    click.echo(f"{channels.channel_tag(device_class, channel)}: {move.previous} -> {move.version} "
               f"({move.who}, {move.when})")


@main.command("pull")
@_with_registry_options
@click.option("--device-class", required=True)
@click.option("--channel", default="stable", show_default=True)
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check the cosign-format signature with --public-key (and every file's digest).")
@click.option("--public-key", type=click.Path(dir_okay=False), default=None,
              help="PEM public key (default: the config's signing key + .pub).")
@click.option("--frontend-hash", default=None, help="The device's audio front-end hash; a release built for "
              "another front end is refused.")
@click.option("--normalization-hash", default=None, help="Motion devices: the sha256 of the normalization.json "
              "their firmware was built with; a release normalized otherwise is refused (update the firmware "
              "with the release's normalization.h instead).")
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Folder the files go to.")
def pull_command(config_path, workdir, registry, repository, device_class, channel, verify, public_key,
                 frontend_hash, normalization_hash, output) -> None:
    """What a gateway runs: download a channel's release, verify it, write its files.

    An interrupted download resumes when the same command is run again.
    """
    from components.ota_pusher import channels, http_registry, releases

    store, repository, config = _release_target(config_path, workdir, registry, repository)
    key = None
    if verify:
        key_path = public_key or (config.release.signing_key_file or "") + ".pub"
        try:
            with open(key_path, "rb") as f:
                key = f.read()
        except OSError as err:
            _fail(f"Public key {key_path} cannot be read ({err.strerror}); give --public-key.", EXIT_USAGE)
    tag = channels.channel_tag(device_class, channel)
    # Kept across attempts: a pull that was cut off resumes from what it already has.
    download_dir = os.path.join(output, ".tinyml-tfx-download")
    try:
        descriptor = store.resolve(tag)
        if descriptor is None:
            raise releases.ReleaseError(f"Channel {tag} points at no release in {store.root}.")
        annotations = store.get_manifest(descriptor["digest"]).get("annotations", {})
        if frontend_hash and annotations.get(releases.FRONTEND_ANNOTATION) != frontend_hash:
            raise releases.ReleaseError(
                f"Release {annotations.get(releases.VERSION_ANNOTATION)} on {tag} was built for audio front end "
                f"{annotations.get(releases.FRONTEND_ANNOTATION)}, not this device's {frontend_hash}; refusing it.")
        if normalization_hash and annotations.get(releases.NORMALIZATION_ANNOTATION) != normalization_hash:
            raise releases.ReleaseError(
                f"Release {annotations.get(releases.VERSION_ANNOTATION)} on {tag} normalizes its inputs with constants "
                f"{annotations.get(releases.NORMALIZATION_ANNOTATION)}, not this device's {normalization_hash}; "
                "refusing it. Flash firmware built with the release's normalization.h to take it.")
        os.makedirs(download_dir, exist_ok=True)
        files = releases.pull_release(store, tag, repository, key, download_dir=download_dir)
    except _registry_errors() as err:
        if not isinstance(err, http_registry.DownloadInterrupted) and os.path.isdir(download_dir):
            shutil.rmtree(download_dir)  # a refused release leaves nothing behind
            if not os.listdir(output):
                os.rmdir(output)
        _fail(str(err), EXIT_FAILED)
    for name, content in files.items():
        # Each file appears whole or not at all: firmware never flashes half a model.
        partial = os.path.join(download_dir, name + ".tmp")
        with open(partial, "wb") as f:
            f.write(content)
        os.replace(partial, os.path.join(output, name))
    shutil.rmtree(download_dir)
    click.echo(f"Pulled {tag} = {annotations.get(releases.VERSION_ANNOTATION)} ({descriptor['digest']}), "
               f"{'signature and digests verified' if key else 'NOT verified'}: {', '.join(sorted(files))} -> {output}")


@main.command("compile")
@config_option
@click.option("--output", default="build/kubeflow/pipeline.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="Where the KFP package (.yaml) goes.")
def compile_command(config_path: str, output: str) -> None:
    """Compile the pipeline into a Kubeflow Pipelines v2 package (KubeflowV2DagRunner).

    The package holds the pipeline spec and the Kubernetes platform spec (the Secrets the
    OtaPusher's pod reads); `submit` or the KFP UI uploads it.
    """
    from pipeline import run_kubeflow

    if not output.endswith((".yaml", ".yml")):
        _fail(f"--output {output}: a KFP package is a .yaml file (what the kfp client and the KFP UI upload); "
              "name it e.g. build/kubeflow/pipeline.yaml.", EXIT_USAGE)
    try:
        config = config_lib.load_config(config_path).for_kubeflow()
    except config_lib.ConfigError as err:
        _fail(str(err), EXIT_USAGE)
    package = run_kubeflow.compile_pipeline(config, output)
    tasks = package["pipeline_spec"]["root"]["dag"]["tasks"]
    click.echo(f"Compiled '{config.pipeline_name}' ({len(tasks)} tasks, image {config.kubeflow.image}) to {output}")


@main.command("submit")
@click.argument("package_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", required=True, help="The Kubeflow Pipelines API endpoint.")
@click.option("--namespace", default="kubeflow", show_default=True)
@click.option("--experiment", default=None, help="Experiment to file the run under.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a run parameter (target_device, max_quantization_drop, calibration_examples, "
              "train_args, eval_config) or a knob inside them (train_steps, min_accuracy).")
def submit_command(package_file: str, host: str, namespace: str, experiment: Optional[str], params) -> None:
    """Upload a compiled pipeline package and start a run on Kubeflow Pipelines."""
    from pipeline import run_kubeflow

    try:
        parameters = run_kubeflow.parse_parameters(package_file, params)
    except run_kubeflow.SubmitError as err:
        _fail(str(err), EXIT_USAGE)
    try:
        run_id = run_kubeflow.submit(package_file, host, namespace, experiment, parameters=parameters)
    except run_kubeflow.SubmitError as err:
        _fail(str(err), EXIT_FAILED)
    click.echo(f"Started run {run_id} on {host} (namespace {namespace})")


if __name__ == "__main__":
    main()
