"""The OTA registry verbs: push, list, promote, rollback, pull, and keys generate.

Each verb parses its options, calls one function of ``components.ota`` and prints the outcome;
a refusal is one paragraph (exit 1), a usage mistake exit 2.
"""

from __future__ import annotations

import os
from typing import Optional

import click

from pipeline.ui.cli_common import (EXIT_FAILED, EXIT_USAGE, config_option, fail, load, run_option, run_summary,
                                    workdir_option)

registry_options = [
    click.option("--registry", default=None, help="OCI layout directory or http(s):// registry URL "
                 "(default: the config's release.registry, i.e. WORKDIR/registry). Credentials: "
                 "TINYML_TFX_REGISTRY_USERNAME/_PASSWORD or _TOKEN in the environment."),
    click.option("--repository", default=None, help="Repository in the registry (default: the pipeline name)."),
    click.option("--insecure", is_flag=True, default=False, help="Allow credentials over plain http:// to a "
                 "registry that is not on loopback (default: the config's release.insecure)."),
]


def _with_registry_options(command):
    for option in reversed(registry_options):
        command = option(command)
    return workdir_option(config_option(command))


def _registry_errors():
    from components.ota import channels, http_registry, oci_layout, publish, releases

    return (channels.ChannelError, http_registry.RegistryError, oci_layout.LayoutError, publish.PublishError,
            releases.ReleaseError)


def _destination(config_path: str, workdir: str, registry: Optional[str], repository: Optional[str],
                 insecure: bool, allow_unsigned: bool = False):
    """The config and where its releases go: the options, else the config's release section."""
    from components.ota import publish

    config = load(config_path, workdir)
    release = config.release
    return config, publish.Destination(
        registry=registry or release.registry, repository=repository or config.repository,
        signing_key_file=release.signing_key_file, allow_unsigned=allow_unsigned or release.allow_unsigned,
        channel=release.channel, insecure=insecure or release.insecure)


def _open(destination):
    """The existing registry of ``destination`` (never created here)."""
    from components.ota import publish

    return publish.open_store(destination.registry, destination.repository, insecure=destination.insecure)


def _signing_key(destination):
    from components.ota import publish

    return publish.signing_key_for(destination)


def _run_artifacts(config, summary):
    """What the run ``summary`` hands to its release, read from ML Metadata."""
    from components.ota import publish
    from pipeline import pipeline as tinyml_pipeline

    gates = {"Evaluator": summary.blessed, "TFLiteQuantizer": summary.quantization.get("blessed"),
             "McuSizeGate": summary.size_gate.get("blessed")}
    if summary.streaming:
        gates[tinyml_pipeline.STREAMING_EVALUATOR] = summary.streaming.get("blessed")
    refused = [name for name, blessed in gates.items() if not blessed]
    if refused:
        fail(f"The model of run {summary.run_id} is not blessed by {', '.join(refused)}; it is not pushed. See "
             "`tinyml-tfx report` for why.", EXIT_FAILED)
    ids = summary.artifact_ids
    return publish.RunArtifacts(
        quantized_dir=summary.quantization["uri"],
        device_report_dir=summary.artifact_uris[tinyml_pipeline.SIZE_GATE]["report"],
        input_processing=config.family.input_processing(config),
        pipeline_name=config.pipeline_name, run_id=summary.run_id,
        lineage=publish.lineage(ids[tinyml_pipeline.QUANTIZER]["quantized_model"], ids[tinyml_pipeline.SIZE_GATE]["report"],
                                ids[tinyml_pipeline.EVALUATOR]["blessing"], ids[tinyml_pipeline.QUANTIZER]["blessing"],
                                ids[tinyml_pipeline.SIZE_GATE]["blessing"]),
        card=tinyml_pipeline.card_text(config),
        test_evaluation_dir=summary.artifact_uris.get(tinyml_pipeline.TEST_EVALUATOR, {}).get("evaluation"),
        additions=_streaming_additions(summary))


def _streaming_additions(summary):
    if not summary.streaming:
        return ()
    from components.streaming_evaluator import release as streaming_release
    from pipeline import pipeline as tinyml_pipeline

    ids = summary.artifact_ids[tinyml_pipeline.STREAMING_EVALUATOR]
    return (streaming_release.addition(summary.streaming["uri"], ids["evaluation"], ids["blessing"]),)


@click.command("push")
@_with_registry_options
@click.option("--version", default=None, help="MAJOR.MINOR.PATCH; default: one patch above the newest.")
@click.option("--allow-unsigned", is_flag=True, help="Allow a push without a signing key (devices that verify "
              "refuse it).")
@run_option
def push_command(config_path, workdir, registry, repository, insecure, version, allow_unsigned, run_id) -> None:
    """Push a run's quantized model as a signed release (only if every gate blessed it)."""
    from components.ota import publish

    config, destination = _destination(config_path, workdir, registry, repository, insecure, allow_unsigned)
    run = _run_artifacts(config, run_summary(config, run_id))
    try:
        published = publish.release_run(run, destination, version=version)
    except _registry_errors() as err:
        fail(str(err), EXIT_FAILED)
    click.echo(f"Pushed {published.destination} ({published.release.digest}){'' if published.signed else ' UNSIGNED'}"
               f"; on {destination.channel} for {', '.join(published.targets)}")


@click.command("list")
@_with_registry_options
def list_command(config_path, workdir, registry, repository, insecure) -> None:
    """List the releases (with key annotations) and where each channel points."""
    from rich.console import Console
    from rich.table import Table

    from components.ota import channels, releases

    _, destination = _destination(config_path, workdir, registry, repository, insecure)
    try:
        store = _open(destination)
        listing = channels.list_releases(store)
    except _registry_errors() as err:
        fail(str(err), EXIT_FAILED)
    versions = Table(title=f"Releases in {store.root}", title_justify="left")
    for column, justify in (("version", "left"), ("model bytes", "right"), ("arena bytes", "right"),
                            ("int8 accuracy", "right"), ("targets", "left"), ("run", "left")):
        versions.add_column(column, justify=justify, overflow="fold")
    for v in listing["versions"]:
        a = v["annotations"]
        versions.add_row(v["version"], a.get(releases.MODEL_BYTES_ANNOTATION, "?"), a.get(releases.ARENA_ANNOTATION, "?"),
                         a.get(releases.INT8_ACCURACY_ANNOTATION, "?"), a.get(releases.TARGETS_ANNOTATION, "-"),
                         a.get(releases.RUN_ANNOTATION, "-"))
    channel_table = Table(title="Channels", title_justify="left")
    for column in ("channel", "version", "history"):
        channel_table.add_column(column, overflow="fold")
    for tag, channel in listing["channels"].items():
        channel_table.add_row(tag, channel["version"], channel["state"])
    console = Console(width=160, highlight=False, soft_wrap=False)
    console.print(versions)
    console.print(channel_table)


@click.command("promote")
@_with_registry_options
@click.option("--device-class", required=True, help="Board name, e.g. nano33ble_sense.")
@click.option("--from", "source", default="canary", show_default=True)
@click.option("--to", "target", default="stable", show_default=True)
@click.option("--version", default=None, help="Version to promote (default: what --from points at).")
@click.option("--force", is_flag=True, help="Promote to stable although the canary gate refuses; the override "
              "and the gate's reasons are recorded in the signed channel history.")
def promote_command(config_path, workdir, registry, repository, insecure, device_class, source, target,
                    version, force) -> None:
    """Move a device class's stable channel to the canary's version; the move is signed and recorded.

    To stable, the canary's field telemetry must not be worse than stable's (the canary gate, over the
    config's monitoring.canary_window_periods), unless --force."""
    from components.ota import channels

    config, destination = _destination(config_path, workdir, registry, repository, insecure)
    try:
        store = _open(destination)
        note = None
        if target == "stable":
            note = _canary_gate(config, store, device_class, source, target, version, force)
        move = channels.promote(store, device_class, source, target, version,
                                private_key=_signing_key(destination), note=note)
    except _registry_errors() as err:
        fail(str(err), EXIT_FAILED)
    click.echo(f"{channels.channel_tag(device_class, target)}: {move.previous or '(none)'} -> {move.version} "
               f"({move.who}, {move.when})")


def _canary_gate(config, store, device_class: str, source: str, target: str, version: Optional[str],
                 force: bool) -> str:
    """The canary gate's verdict as the note the promote records; refuses (exit 1) unless it passes or ``force``."""
    from components.ota import channels
    from components.telemetry import canary, ingest
    from pipeline import monitoring

    candidate = version or channels.current_version(store, device_class, source)
    stable = channels.current_version(store, device_class, target)
    if candidate is None or candidate == stable:
        return ""    # nothing to judge: promote says why it does nothing
    field = monitoring.dataset_dir(config, monitoring.FIELD_DATASET)
    summaries = [s for s in ingest.read_all(field) if s["device_class"] == device_class]
    if not summaries:
        # A fleet that reports no telemetry (monitoring not set up) is not gated; the move says so.
        click.echo(f"Canary gate: not applied, no field telemetry for {device_class} in {field}.")
        return f"canary gate not applied: no field telemetry for {device_class}"
    m = config.monitoring
    verdict = canary.judge(summaries, candidate, stable, m.canary_window_periods, m.canary_max_detection_rate_drop,
                           m.canary_max_score_distance, m.canary_max_confirmed_share_drop)
    notes = "".join(f"; note: {n}" for n in verdict.notes)
    if verdict.allowed:
        figures = (verdict.rates() or "; ".join(verdict.reasons)) + notes
        click.echo(f"Canary gate: passed over period(s) {verdict.periods}: {figures}.")
        return f"canary gate passed: {figures}"
    reasons = "; ".join(verdict.reasons) + notes
    if not force:
        fail(f"Not promoting {candidate} to {channels.channel_tag(device_class, target)}: the canary gate refuses "
             f"({reasons}). Let the canary run longer, or fix the model; `--force` overrides, and the override is "
             "recorded in the channel's signed history.", EXIT_FAILED)
    click.echo(f"Canary gate: refused ({reasons}); overridden with --force.")
    return f"forced past the canary gate: {reasons}"


@click.command("rollback")
@_with_registry_options
@click.option("--device-class", required=True)
@click.option("--channel", default="stable", show_default=True)
def rollback_command(config_path, workdir, registry, repository, insecure, device_class, channel) -> None:
    """Point a channel back at its previous version; the signed record lets devices take the older version."""
    from components.ota import channels

    _, destination = _destination(config_path, workdir, registry, repository, insecure)
    try:
        move = channels.rollback(_open(destination), device_class, channel, private_key=_signing_key(destination))
    except _registry_errors() as err:
        fail(str(err), EXIT_FAILED)
    click.echo(f"{channels.channel_tag(device_class, channel)}: {move.previous} -> {move.version} "
               f"({move.who}, {move.when}); signed rollback record written")


@click.command("pull")
@_with_registry_options
@click.option("--device-class", required=True)
@click.option("--channel", default="stable", show_default=True)
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check the cosign-format signature and the channel's signed history with --public-key.")
@click.option("--public-key", type=click.Path(dir_okay=False), default=None,
              help="PEM public key (default: the config's signing key + .pub).")
@click.option("--frontend-hash", default=None, help="The device's audio front-end hash; a release built for "
              "another front end is refused.")
@click.option("--normalization-hash", default=None, help="Motion devices: the sha256 of the normalization.json "
              "their firmware was built with; a release normalized otherwise is refused (update the firmware "
              "with the release's normalization.h instead).")
@click.option("--current-version", default=None, help="The version the device runs; an older release is refused "
              "unless a signed rollback record authorizes it (default: the state file's).")
@click.option("--state-file", type=click.Path(dir_okay=False), default=None,
              help="The gateway's state file (default: OUTPUT/.tinyml-tfx-gateway.json).")
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Folder the files go to.")
def pull_command(config_path, workdir, registry, repository, insecure, device_class, channel, verify, public_key,
                 frontend_hash, normalization_hash, current_version, state_file, output) -> None:
    """What a gateway runs: take a channel's release only if it is signed and meant for this device.

    An interrupted download resumes when the same command is run again.
    """
    from components.ota import gateway, releases

    config, destination = _destination(config_path, workdir, registry, repository, insecure)
    key = None
    if verify:
        key_path = public_key or (config.release.signing_key_file or "") + ".pub"
        try:
            with open(key_path, "rb") as f:
                key = f.read()
        except OSError as err:
            fail(f"Public key {key_path} cannot be read ({err.strerror}); give --public-key.", EXIT_USAGE)
    expected = {annotation: value for annotation, value in ((releases.FRONTEND_ANNOTATION, frontend_hash),
                                                            (releases.NORMALIZATION_ANNOTATION, normalization_hash))
                if value}
    device = gateway.Device(device_class, channel, expected, current_version)
    try:
        installed = gateway.pull(_open(destination), destination.repository, device, output, key, state_file)
    except _registry_errors() as err:
        fail(str(err), EXIT_FAILED)
    click.echo(f"Pulled {installed.tag} = {installed.version} ({installed.digest}), "
               f"{'signature, history and digests verified' if installed.verified else 'NOT verified'}: "
               f"{', '.join(installed.files)} -> {installed.output}")


@click.group("keys")
def keys_group() -> None:
    """Release signing keys."""


@keys_group.command("generate")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="The private key's file; the public key goes to OUTPUT.pub.")
def keys_generate_command(output) -> None:
    """Make an ECDSA P-256 key pair (cosign's kind), the private key encrypted with a passphrase.

    The passphrase comes from COSIGN_PASSWORD (or the file COSIGN_PASSWORD_FILE names), else it is asked for.
    """
    from components.ota import publish

    try:
        passphrase = publish.credential(os.environ, publish.PASSPHRASE_ENV)
    except publish.PublishError as err:
        fail(str(err), EXIT_USAGE)
    if passphrase is None:
        passphrase = click.prompt("Passphrase for the new key", hide_input=True, confirmation_prompt=True)
    if not passphrase:
        fail("An empty passphrase would leave the release key unencrypted; give one (COSIGN_PASSWORD, "
             "COSIGN_PASSWORD_FILE or at the prompt).", EXIT_USAGE)
    try:
        public = publish.write_key_pair(output, passphrase.encode())
    except publish.PublishError as err:
        fail(str(err), EXIT_USAGE)
    click.echo(f"Wrote {output} (encrypted, mode 0600) and {public}. Set release.signing_key_file: {output} and give "
               "the passphrase as COSIGN_PASSWORD (or COSIGN_PASSWORD_FILE) where pushes run; devices verify with "
               f"{public}, and so does `cosign verify --key {public}`.")
