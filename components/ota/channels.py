"""Release channels per device class, with their history kept in the registry itself.

A channel is a tag ``<device_class>-<channel>`` (e.g. ``nano33ble_sense-canary``) on a
release manifest. Every move of a channel (set by a push, promote, rollback) is recorded
as an entry ``{action, version, from, who, when}`` in a history artifact tagged
``<device_class>-<channel>.history``: an OCI manifest (artifact type
``HISTORY_ARTIFACT_TYPE``) with one JSON layer holding the whole history. The history is
written before the channel tag moves, so a move is never unrecorded.

Works on any store with the ``OciLayout`` interface (the embedded layout or ``HttpRegistry``).
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import json
import re
from typing import Any, Dict, List, Optional

from components.ota import oci_layout, releases

HISTORY_ARTIFACT_TYPE = "application/vnd.tinyml-tfx.channel-history.v1"
HISTORY_MEDIA_TYPE = "application/vnd.tinyml-tfx.channel-history.v1+json"
DEFAULT_CHANNELS = ("canary", "stable")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class ChannelError(ValueError):
    """A channel move that cannot be made; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Move:
    """One recorded move of a channel."""

    action: str
    version: str
    previous: Optional[str]
    who: str
    when: str

    def to_json(self) -> Dict[str, Any]:
        return {"action": self.action, "version": self.version, "from": self.previous, "who": self.who,
                "when": self.when}


def channel_tag(device_class: str, channel: str) -> str:
    """The tag of ``channel`` for ``device_class``, e.g. ``nano33ble_sense-stable``."""
    for field, value in (("device class", device_class), ("channel", channel)):
        if not _NAME.match(value):
            raise ChannelError(f"The {field} '{value}' is not a valid name: use lower-case letters, digits and _.")
    return f"{device_class}-{channel}"


def _history_tag(tag: str) -> str:
    return f"{tag}.history"


def history(store, device_class: str, channel: str) -> List[Move]:
    """Every recorded move of the channel, oldest first (empty when it never moved)."""
    descriptor = store.resolve(_history_tag(channel_tag(device_class, channel)))
    if descriptor is None:
        return []
    layer = store.get_manifest(descriptor["digest"])["layers"][0]
    entries = json.loads(store.get_blob(layer["digest"]))
    return [Move(e["action"], e["version"], e["from"], e["who"], e["when"]) for e in entries]


def current_version(store, device_class: str, channel: str) -> Optional[str]:
    """The version the channel points at, or None."""
    descriptor = store.resolve(channel_tag(device_class, channel))
    if descriptor is None:
        return None
    return store.get_manifest(descriptor["digest"])["annotations"].get(releases.VERSION_ANNOTATION)


def _version_descriptor(store, version: str) -> Dict[str, Any]:
    descriptor = store.resolve(version)
    if descriptor is None:
        known = sorted(t for t in store.tags() if releases.is_version(t))
        raise ChannelError(f"No release {version} in {store.root}; releases: {', '.join(known) or 'none'}.")
    return descriptor


def _who(actor: Optional[str]) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _move(store, device_class: str, channel: str, version: str, action: str, actor: Optional[str],
          only_if_changed: bool = False) -> Optional[Move]:
    tag = channel_tag(device_class, channel)
    previous = current_version(store, device_class, channel)
    if only_if_changed and previous == version:
        return None
    descriptor = _version_descriptor(store, version)
    manifest = store.get_manifest(descriptor["digest"])
    gated_for = manifest["annotations"].get(releases.TARGETS_ANNOTATION)
    if gated_for is not None and device_class not in gated_for.split(","):
        raise ChannelError(f"Release {version} was gated for {gated_for}, not for {device_class}; a device class "
                           "only takes a model the MCU size gate checked against it.")
    move = Move(action, version, previous, _who(actor),
                datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    entries = [m.to_json() for m in history(store, device_class, channel)] + [move.to_json()]
    layer = store.put_blob(json.dumps(entries, indent=1).encode(), HISTORY_MEDIA_TYPE,
                           {oci_layout.TITLE: "history.json"})
    history_manifest = store.put_manifest(oci_layout.release_manifest(
        [layer], HISTORY_ARTIFACT_TYPE, {"dev.tinyml-tfx.channel": tag}, store))
    store.tag(_history_tag(tag), history_manifest)
    store.tag(tag, descriptor)
    return move


def set_channel(store, device_class: str, channel: str, version: str, actor: Optional[str] = None,
                action: str = "set", only_if_changed: bool = False) -> Optional[Move]:
    """Points the channel at ``version`` and records the move; with ``only_if_changed``, a
    channel already there is left alone (no history entry) and None is returned."""
    return _move(store, device_class, channel, version, action, actor, only_if_changed)


def promote(store, device_class: str, source: str = "canary", target: str = "stable",
            version: Optional[str] = None, actor: Optional[str] = None) -> Move:
    """Moves ``target`` to ``version`` (default: what ``source`` points at) and records it."""
    version = version or current_version(store, device_class, source)
    if version is None:
        raise ChannelError(f"Channel {channel_tag(device_class, source)} points at no release yet; push one first "
                           "or give the version to promote.")
    if version == current_version(store, device_class, target):
        raise ChannelError(f"{channel_tag(device_class, target)} already points at {version}.")
    return _move(store, device_class, target, version, f"promote from {source}", actor)


def rollback(store, device_class: str, channel: str = "stable", actor: Optional[str] = None) -> Move:
    """Points the channel back at the version it had before its current one, and records it.

    The history is replayed as a stack (a set or promote pushes, a rollback pops), so two
    rollbacks in a row go two versions back.
    """
    stack: List[str] = []
    for move in history(store, device_class, channel):
        if move.action == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(move.version)
    if len(stack) < 2:
        raise ChannelError(f"{channel_tag(device_class, channel)} has no earlier version to roll back to "
                           f"(history: {', '.join(stack) or 'empty'}).")
    return _move(store, device_class, channel, stack[-2], "rollback", actor)


def list_releases(store) -> Dict[str, Any]:
    """Versions (with their key annotations) and channels (with the version they point at)."""
    tags = store.tags()
    versions = []
    for tag in sorted((t for t in tags if releases.is_version(t)),
                      key=lambda t: tuple(int(p) for p in t.split("."))):
        manifest = store.get_manifest(tags[tag]["digest"])
        versions.append({"version": tag, "digest": tags[tag]["digest"], "annotations": manifest.get("annotations", {})})
    by_digest = {v["digest"]: v["version"] for v in versions}
    channels = {tag: by_digest.get(descriptor["digest"], descriptor["digest"]) for tag, descriptor in sorted(tags.items())
                if "-" in tag and not tag.endswith((".history", ".sig")) and not releases.is_version(tag)}
    return {"versions": versions, "channels": channels}
