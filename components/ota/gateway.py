"""What a gateway runs to update a device: take a channel's release only if it is meant for this device.

``pull`` resolves the channel tag to a manifest digest once; the signature, the annotations,
the channel's signed history and every file are then those of that digest. Before any file
is written it checks, from the signed manifest and history:

- the signature (cosign format) for this repository;
- that the device class is one the MCU size gate passed (``dev.tinyml-tfx.targets``);
- the device's input processing (audio front-end or normalization hash) when given;
- that the channel tag points where its signed history says it does (a tag moved by hand
  is refused);
- anti-rollback: the version is not lower than what the device runs (``current_version``
  or the gateway's state file), unless the signed history's rollback records authorize
  exactly that downgrade; and a history older than one the gateway has seen is refused;
- that every file name is a plain base name.

A refused release leaves the output folder and the state file as they were. Files are
installed each by an atomic rename; the state file is written last. Formats:
components/ota/README.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import time
from typing import Any, Dict, List, Mapping, Optional

from components.ota import channels, oci_layout, releases

STATE_SCHEMA = "tinyml-tfx/gateway-state/v1"
STATE_FILE = ".tinyml-tfx-gateway.json"       # default: in the output folder
DOWNLOAD_DIR = ".tinyml-tfx-download"          # inside the output folder, kept while a pull can resume
# What each input-processing annotation means to the person reading a refusal.
INPUT_PROCESSING = {
    releases.FRONTEND_ANNOTATION: "audio front end",
    releases.NORMALIZATION_ANNOTATION: "input normalization constants (normalization.h)",
}


class Refused(releases.ReleaseError):
    """The release is not for this device, or does not verify; nothing was written."""


@dataclasses.dataclass(frozen=True)
class Device:
    """What the gateway knows about the device it updates.

    Attributes:
        device_class: board name, e.g. ``nano33ble_sense``.
        channel: the channel it follows.
        input_processing: annotation -> the value the device's firmware was built with
            (``releases.FRONTEND_ANNOTATION`` or ``releases.NORMALIZATION_ANNOTATION``).
        current_version: the version the device runs, when the gateway is told (else the state file's).
    """

    device_class: str
    channel: str = "stable"
    input_processing: Mapping[str, str] = dataclasses.field(default_factory=dict)
    current_version: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Installed:
    tag: str
    version: str
    digest: str
    files: List[str]
    verified: bool
    output: str


@dataclasses.dataclass(frozen=True)
class _Checked:
    version: str
    digest: str
    layers: Dict[str, Dict[str, Any]]
    history_length: Optional[int]


class _ChannelMoving(Refused):
    """The tag and its history disagree; a move may be half-way (history written, tag not yet)."""


def read_state(path: str) -> Dict[str, Any]:
    """The gateway's state file (empty when there is none yet).

    Raises:
        Refused: when it exists but cannot be read or is not a state file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise Refused(f"The gateway state file {path} cannot be read ({err}); it records the version this device "
                      "runs, which anti-rollback needs. Restore it, or remove it and give --current-version.") from None
    if not isinstance(state, dict) or state.get("schema") != STATE_SCHEMA:
        raise Refused(f"{path} is not a gateway state file (schema {STATE_SCHEMA}); give another --state-file.")
    return state


def _running_version(device: Device, state: Mapping[str, Any], state_file: str) -> Optional[str]:
    candidates = [v for v in (device.current_version, state.get("version")) if v]
    for version in candidates:
        try:
            releases.version_key(version)
        except releases.ReleaseError:
            raise Refused(f"The device's current version '{version}' (--current-version or {state_file}) is not "
                          "MAJOR.MINOR.PATCH.") from None
    return max(candidates, key=releases.version_key) if candidates else None


def _check(store, repository: str, device: Device, public_key_pem: Optional[bytes], running: Optional[str],
           state: Mapping[str, Any]) -> _Checked:
    tag = channels.channel_tag(device.device_class, device.channel)
    tagged = store.get_tagged_manifest(tag)
    if tagged is None:
        raise Refused(f"Channel {tag} points at no release in {store.root}.")
    descriptor, manifest = tagged
    digest = descriptor["digest"]
    annotations = manifest.get("annotations") or {}
    version = annotations.get(releases.VERSION_ANNOTATION)
    what = f"Release {version} on {tag} ({digest})"
    if public_key_pem is not None:
        releases.verify_signature(store, digest, repository, public_key_pem, what)
    if not isinstance(version, str) or not releases.is_version(version):
        raise Refused(f"{what} carries no MAJOR.MINOR.PATCH version; refusing it.")
    gated_for = [t for t in str(annotations.get(releases.TARGETS_ANNOTATION, "")).split(",") if t]
    if device.device_class not in gated_for:
        raise Refused(f"{what} was gated for {', '.join(gated_for) or 'no device class'}, not for "
                      f"{device.device_class}: the MCU size gate never checked it against this board. Refusing it; "
                      "nothing was written.")
    for annotation, expected in device.input_processing.items():
        actual = annotations.get(annotation)
        if actual != expected:
            meaning = INPUT_PROCESSING.get(annotation, annotation)
            raise Refused(f"{what} was built for the {meaning} {actual or '(none recorded)'}, not this device's "
                          f"{expected}; refusing it. Flash firmware built with the release's input processing to "
                          "take it.")
    layers = releases.release_files_of(manifest, what)
    history_length = None
    moves: List[channels.Move] = []
    if public_key_pem is not None:
        try:
            recorded = channels.read_history(store, device.device_class, device.channel, repository, public_key_pem)
        except channels.ChannelError as err:
            raise Refused(f"{what}: {err} The channel's state cannot be trusted; refusing it.") from None
        if recorded.last is None:
            raise Refused(f"Channel {tag} has no signed history, so where it points was not set by tinyml-tfx; "
                          "refusing it. Move it with `tinyml-tfx promote` (or push again).")
        if recorded.last.digest != digest:
            raise _ChannelMoving(
                f"Channel {tag} points at {version} ({digest}), but its signed history says the last move put it at "
                f"{recorded.last.version} ({recorded.last.digest}): the tag was moved outside tinyml-tfx (by hand or "
                "by someone without the release key). Refusing it; move channels with `tinyml-tfx promote` or "
                "`tinyml-tfx rollback`.")
        seen = (state.get("history") or {}).get(tag)
        if isinstance(seen, int) and len(recorded.moves) < seen:
            raise Refused(f"The signed history of {tag} has {len(recorded.moves)} moves, fewer than the {seen} this "
                          "gateway has already seen: an older history was put back (a replay). Refusing it.")
        history_length, moves = len(recorded.moves), recorded.moves
    if running is not None and releases.version_key(version) < releases.version_key(running):
        if not channels.rollback_allows(moves, running, version):
            raise Refused(
                f"{what} is older than the {running} this device runs, and no signed rollback record authorizes "
                f"{running} -> {version}; refusing the downgrade. A rollback made with `tinyml-tfx rollback` "
                "carries that record; a channel moved back by hand does not.")
    return _Checked(version, digest, layers, history_length)


def _install(paths: Mapping[str, str], output: str) -> None:
    """Moves each downloaded blob to its file name, atomically (a blob two names share is copied)."""
    users: Dict[str, List[str]] = {}
    for name, path in paths.items():
        users.setdefault(path, []).append(name)
    for path, names in users.items():
        for name in names[:-1]:
            shutil.copyfile(path, os.path.join(output, name + ".tmp"))
            os.replace(os.path.join(output, name + ".tmp"), os.path.join(output, name))
        os.replace(path, os.path.join(output, names[-1]))


def pull(store, repository: str, device: Device, output: str, public_key_pem: Optional[bytes],
         state_file: Optional[str] = None) -> Installed:
    """Pulls the release on the device's channel into ``output`` if every check passes.

    Args:
        store: an ``OciLayout`` (opened with ``create=False``) or ``HttpRegistry``.
        repository: the repository the signatures name.
        device: the device's class, channel, input processing and (optionally) current version.
        output: the folder the files go to (created when missing).
        public_key_pem: the release key's public half; None skips the signature and history
            checks (``--no-verify``); the other checks still apply.
        state_file: the gateway's state file (default ``output/.tinyml-tfx-gateway.json``).

    Raises:
        Refused: the release is not for this device or does not verify; nothing was written.
        http_registry.DownloadInterrupted: the link dropped; run again to resume.
        releases.ReleaseError, http_registry.RegistryError: an unreachable or failing registry.
    """
    state_file = state_file or os.path.join(output, STATE_FILE)
    state = read_state(state_file)
    for key, value in (("repository", repository), ("device_class", device.device_class)):
        if state.get(key) not in (None, value):
            raise Refused(f"The gateway state file {state_file} is for {key.replace('_', ' ')} {state[key]}, not "
                          f"{value}; give this device its own --state-file (or --output).")
    running = _running_version(device, state, state_file)
    try:
        checked = _check(store, repository, device, public_key_pem, running, state)
    except _ChannelMoving:
        time.sleep(0.5)  # a promote writes the history, then the tag: look once more, from the start
        checked = _check(store, repository, device, public_key_pem, running, state)

    created = not os.path.isdir(output)
    download_dir = os.path.join(output, DOWNLOAD_DIR)
    try:
        os.makedirs(download_dir, exist_ok=True)
        try:
            paths = {name: releases.download_verified(store, layer["digest"], download_dir)
                     for name, layer in checked.layers.items()}
        except oci_layout.LayoutError as err:  # a corrupt blob: the release is refused, nothing is kept
            shutil.rmtree(output if created else download_dir, ignore_errors=True)
            raise Refused(f"Release {checked.version}: {err} Refusing it; nothing was written.") from None
        # An interrupted or failed download (DownloadInterrupted, RegistryError) keeps what arrived.
        _install(paths, output)
        for stale in set(state.get("files") or []) - set(checked.layers):
            if releases.safe_file_name(stale) and os.path.isfile(os.path.join(output, stale)):
                os.remove(os.path.join(output, stale))  # a file of the previous release this one no longer ships
    except OSError as err:
        raise releases.ReleaseError(f"The output folder {output} cannot be written ({err.strerror or err}); give "
                                    "a writable --output.") from None
    tag = channels.channel_tag(device.device_class, device.channel)
    history = dict(state.get("history") or {})
    if checked.history_length is not None:
        history[tag] = checked.history_length
    new_state = {"schema": STATE_SCHEMA, "repository": repository, "device_class": device.device_class,
                 "channel": device.channel, "version": checked.version, "digest": checked.digest,
                 "files": sorted(checked.layers), "history": history,
                 "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        os.makedirs(os.path.dirname(os.path.abspath(state_file)), exist_ok=True)
        oci_layout.atomic_write(state_file, json.dumps(new_state, indent=2).encode())
    except OSError as err:
        raise releases.ReleaseError(f"Release {checked.version} is installed in {output}, but the gateway state "
                                    f"file {state_file} cannot be written ({err.strerror or err}); fix it before the "
                                    "next pull, or anti-rollback starts from the older state.") from None
    shutil.rmtree(download_dir, ignore_errors=True)
    return Installed(tag, checked.version, checked.digest, sorted(checked.layers), public_key_pem is not None, output)
