"""The OTA registry verbs: push, list, promote, rollback, pull."""

from __future__ import annotations

import os
import shutil
from typing import Optional

import click

from pipeline.ui.cli_common import (EXIT_FAILED, EXIT_USAGE, config_option, fail, load, run_option, run_summary,
                                    workdir_option)

def _release_target(config_path: str, workdir: str, registry: Optional[str], repository: Optional[str]):
    """The store and repository a registry verb works on: the options, else the config's release section."""
    from components.ota import publish

    config = load(config_path, workdir)
    registry = registry or config.release.registry
    repository = repository or config.repository
    try:
        return publish.open_store(registry, repository), repository, config
    except publish.PublishError as err:
        fail(str(err), EXIT_USAGE)


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
    from components.ota import channels, http_registry, oci_layout, publish, releases

    return (channels.ChannelError, http_registry.RegistryError, oci_layout.LayoutError, publish.PublishError,
            releases.ReleaseError)


@click.command("push")
@_with_registry_options
@click.option("--version", default=None, help="MAJOR.MINOR.PATCH; default: one patch above the newest.")
@click.option("--allow-unsigned", is_flag=True, help="Push without a signature (devices that verify refuse it).")
@run_option
def push_command(config_path, workdir, registry, repository, version, allow_unsigned, run_id) -> None:
    """Push a run's quantized model as a signed release (only if every gate blessed it)."""
    from components.ota import publish
    from pipeline import pipeline as tinyml_pipeline

    store, repository, config = _release_target(config_path, workdir, registry, repository)
    summary = run_summary(config, run_id)
    gates = {"Evaluator": summary.blessed, "TFLiteQuantizer": summary.quantization.get("blessed"),
             "McuSizeGate": summary.size_gate.get("blessed")}
    if summary.streaming:
        gates[tinyml_pipeline.STREAMING_EVALUATOR] = summary.streaming.get("blessed")
    refused = [name for name, blessed in gates.items() if not blessed]
    if refused:
        fail(f"The model of run {summary.run_id} is not blessed by {', '.join(refused)}; it is not pushed. See "
              "`tinyml-tfx report` for why.", EXIT_FAILED)
    uris, ids = summary.artifact_uris, summary.artifact_ids
    lineage = publish.lineage(
        ids[tinyml_pipeline.QUANTIZER]["quantized_model"], ids[tinyml_pipeline.SIZE_GATE]["report"],
        ids[tinyml_pipeline.EVALUATOR]["blessing"], ids[tinyml_pipeline.QUANTIZER]["blessing"],
        ids[tinyml_pipeline.SIZE_GATE]["blessing"])
    try:
        files = publish.release_files(summary.quantization["uri"], uris[tinyml_pipeline.SIZE_GATE]["report"])
        annotations = publish.release_annotations(
            files, config.family.input_processing_hash(config), config.pipeline_name, summary.run_id, lineage)
        publish.add_model_card(files, tinyml_pipeline.card_text(config), annotations)
        if summary.streaming:
            from components.streaming_evaluator import release as streaming_release

            streaming_ids = ids[tinyml_pipeline.STREAMING_EVALUATOR]
            streaming_release.add_to_release(files, annotations, summary.streaming["uri"], {
                "streaming_evaluation": streaming_ids["evaluation"], "streaming_blessing": streaming_ids["blessing"]})
        unsigned = allow_unsigned or config.release.allow_unsigned
        key = None if unsigned else publish.load_signing_key(config.release.signing_key_file)
        release = publish.publish(store, files, annotations, repository, key, unsigned, config.release.channel,
                                  actor=None, version=version)
    except _registry_errors() as err:
        fail(str(err), EXIT_FAILED)
    click.echo(f"Pushed {store.root}:{release.version} ({release.digest}); on {config.release.channel} for "
               + ", ".join(publish.targets_of(release.annotations)))


@click.command("list")
@_with_registry_options
def list_command(config_path, workdir, registry, repository) -> None:
    """List the releases (with key annotations) and where each channel points."""
    from components.ota import channels, releases

    store, _, _ = _release_target(config_path, workdir, registry, repository)
    try:
        listing = channels.list_releases(store)
    except _registry_errors() as err:
        fail(str(err), EXIT_FAILED)
    click.echo(f"Releases in {store.root}:")
    for v in listing["versions"]:
        a = v["annotations"]
        click.echo(f"  {v['version']:<9} {a.get(releases.MODEL_BYTES_ANNOTATION, '?'):>7} B  arena "
                   f"{a.get(releases.ARENA_ANNOTATION, '?'):>7} B  int8 acc {a.get(releases.INT8_ACCURACY_ANNOTATION, '?')}"
                   f"  targets {a.get(releases.TARGETS_ANNOTATION, '-')}  run {a.get(releases.RUN_ANNOTATION, '-')}")
    click.echo("Channels:")
    for tag, version in listing["channels"].items():
        click.echo(f"  {tag:<32} -> {version}")


@click.command("promote")
@_with_registry_options
@click.option("--device-class", required=True, help="Board name, e.g. nano33ble_sense.")
@click.option("--from", "source", default="canary", show_default=True)
@click.option("--to", "target", default="stable", show_default=True)
@click.option("--version", default=None, help="Version to promote (default: what --from points at).")
def promote_command(config_path, workdir, registry, repository, device_class, source, target, version) -> None:
    """Move a device class's stable channel to the canary's version; the move is recorded."""
    from components.ota import channels

    store, _, _ = _release_target(config_path, workdir, registry, repository)
    try:
        move = channels.promote(store, device_class, source, target, version)
    except _registry_errors() as err:
        fail(str(err), EXIT_FAILED)
    click.echo(f"{channels.channel_tag(device_class, target)}: {move.previous or '(none)'} -> {move.version} "
               f"({move.who}, {move.when})")


@click.command("rollback")
@_with_registry_options
@click.option("--device-class", required=True)
@click.option("--channel", default="stable", show_default=True)
def rollback_command(config_path, workdir, registry, repository, device_class, channel) -> None:
    """Point a channel back at its previous version; the move is recorded."""
    from components.ota import channels

    store, _, _ = _release_target(config_path, workdir, registry, repository)
    try:
        move = channels.rollback(store, device_class, channel)
    except _registry_errors() as err:
        fail(str(err), EXIT_FAILED)
    click.echo(f"{channels.channel_tag(device_class, channel)}: {move.previous} -> {move.version} "
               f"({move.who}, {move.when})")


@click.command("pull")
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
    from components.ota import channels, http_registry, releases

    store, repository, config = _release_target(config_path, workdir, registry, repository)
    key = None
    if verify:
        key_path = public_key or (config.release.signing_key_file or "") + ".pub"
        try:
            with open(key_path, "rb") as f:
                key = f.read()
        except OSError as err:
            fail(f"Public key {key_path} cannot be read ({err.strerror}); give --public-key.", EXIT_USAGE)
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
        fail(str(err), EXIT_FAILED)
    for name, content in files.items():
        # Each file appears whole or not at all: firmware never flashes half a model.
        partial = os.path.join(download_dir, name + ".tmp")
        with open(partial, "wb") as f:
            f.write(content)
        os.replace(partial, os.path.join(output, name))
    shutil.rmtree(download_dir)
    click.echo(f"Pulled {tag} = {annotations.get(releases.VERSION_ANNOTATION)} ({descriptor['digest']}), "
               f"{'signature and digests verified' if key else 'NOT verified'}: {', '.join(sorted(files))} -> {output}")


