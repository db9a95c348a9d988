"""Release channels per device class, with a signed history kept in the registry itself.

A channel is a tag ``<device_class>-<channel>`` (e.g. ``nano33ble_sense-canary``) on a
release manifest. Every move of a channel (by a push, promote or rollback) is appended to
the channel's history, a document signed by the release key (DSSE envelope, see
``signing``) and stored as an OCI artifact tagged ``<device_class>-<channel>.history``.
The history is written before the channel tag moves, and both writes are conditional on
what was read (``ConcurrentWrite`` otherwise), so a move is never unrecorded and two
movers at once never lose an entry.

The signed history is the channel's truth: a gateway (``gateway.pull``) takes a channel
only when its tag points at the digest of the history's last entry, so a tag moved by
hand, outside this module, is refused; a rollback entry is the signed record that lets a
device go back to an older version. Formats: components/ota/README.md.

Works on any store with the ``OciLayout`` interface (the embedded layout or ``HttpRegistry``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import getpass
import json
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from components.ota import oci_layout, releases, signing

HISTORY_ARTIFACT_TYPE = "application/vnd.tinyml-tfx.channel-history.v1"
HISTORY_PAYLOAD_TYPE = "application/vnd.tinyml-tfx.channel-history.v2+json"
HISTORY_SCHEMA = "tinyml-tfx/channel-history/v2"
ROLLBACK = "rollback"
EMBED_LIMIT = 64 * 1024  # histories up to this size also travel inside their manifest (~250 moves)
DEFAULT_CHANNELS = ("canary", "stable")
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")


class ChannelError(ValueError):
    """A channel move that cannot be made, or a channel whose state does not verify; the
    message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Move:
    """One recorded move of a channel: ``action`` took it from ``previous`` to ``version``."""

    action: str
    version: str
    previous: Optional[str]
    who: str
    when: str
    digest: Optional[str] = None
    previous_digest: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        return {"action": self.action, "version": self.version, "digest": self.digest, "from": self.previous,
                "from_digest": self.previous_digest, "who": self.who, "when": self.when}

    @classmethod
    def from_json(cls, entry: Dict[str, Any]) -> "Move":
        return cls(entry["action"], entry["version"], entry.get("from"), entry.get("who", "?"), entry.get("when", "?"),
                   entry.get("digest"), entry.get("from_digest"))


@dataclasses.dataclass(frozen=True)
class History:
    """A channel's history as read from the registry (``digest``: its manifest's, None when it has none)."""

    moves: List[Move]
    digest: Optional[str]
    signed: bool

    @property
    def last(self) -> Optional[Move]:
        return self.moves[-1] if self.moves else None


def channel_tag(device_class: str, channel: str) -> str:
    """The tag of ``channel`` for ``device_class``, e.g. ``nano33ble_sense-stable``."""
    for field, value in (("device class", device_class), ("channel", channel)):
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise ChannelError(f"The {field} '{value}' is not a valid name: use lower-case letters, digits and _.")
    return f"{device_class}-{channel}"


def history_tag(tag: str) -> str:
    return f"{tag}.history"


def _parse_history(store, tag: str, tagged, repository: Optional[str], public_key_pem: Optional[bytes],
                   adopt_v1: bool = False) -> History:
    """The moves in a history artifact; with a key, its signature, repository and channel are checked.
    A writer adopts an unsigned v1 history (``adopt_v1``); a verifying reader never trusts one."""
    descriptor, manifest = tagged
    what = f"The history of channel {tag} in {store.root}"
    try:
        layer = manifest["layers"][0]
        document = json.loads(oci_layout.embedded_data(layer) or store.get_blob(layer["digest"]))
    except (KeyError, IndexError, TypeError, ValueError, oci_layout.LayoutError) as err:
        raise ChannelError(f"{what} cannot be read ({type(err).__name__}: {err}).") from None
    if isinstance(document, list):  # v1, before histories were signed: adopted as it is, never trusted by gateways
        if public_key_pem is not None and not adopt_v1:
            raise ChannelError(f"{what} is an unsigned v1 history; move the channel once with this version of "
                               "tinyml-tfx (promote or rollback) to sign it.")
        return History([Move.from_json(e) for e in document], descriptor["digest"], signed=False)
    try:
        payload = signing.dsse_payload(document, HISTORY_PAYLOAD_TYPE, public_key_pem)
        body = json.loads(payload)
        moves = [Move.from_json(e) for e in body["entries"]]
    except signing.SignatureError as err:
        raise ChannelError(f"{what} does not verify: {err}") from None
    except (KeyError, TypeError, ValueError) as err:
        raise ChannelError(f"{what} is malformed ({type(err).__name__}: {err}).") from None
    if public_key_pem is not None:
        if body.get("schema") != HISTORY_SCHEMA or body.get("channel") != tag or (
                repository is not None and body.get("repository") != repository):
            raise ChannelError(f"{what} is signed for channel {body.get('channel')!r} of repository "
                               f"{body.get('repository')!r}, not for {tag} of {repository}: a history copied from "
                               "elsewhere.")
    return History(moves, descriptor["digest"], signed=bool(document.get("signatures")))


def read_history(store, device_class: str, channel: str, repository: Optional[str] = None,
                 public_key_pem: Optional[bytes] = None) -> History:
    """The channel's history (empty when it never moved); verified when ``public_key_pem`` is given.

    Raises:
        ChannelError: an unreadable history, or with a key one that is unsigned, signed by another
            key, changed after signing, or signed for another channel or repository.
    """
    tag = channel_tag(device_class, channel)
    tagged = store.get_tagged_manifest(history_tag(tag))
    if tagged is None:
        return History([], None, signed=False)
    return _parse_history(store, tag, tagged, repository, public_key_pem)


def history(store, device_class: str, channel: str) -> List[Move]:
    """Every recorded move of the channel, oldest first (empty when it never moved); not verified."""
    return read_history(store, device_class, channel).moves


def current_version(store, device_class: str, channel: str) -> Optional[str]:
    """The version the channel points at, or None."""
    tagged = store.get_tagged_manifest(channel_tag(device_class, channel))
    if tagged is None:
        return None
    return tagged[1].get("annotations", {}).get(releases.VERSION_ANNOTATION)


def _version_descriptor(store, version: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    tagged = store.get_tagged_manifest(version) if releases.is_version(version) else None
    if tagged is None:
        known = sorted((t for t in store.tags() if releases.is_version(t)), key=releases.version_key)
        raise ChannelError(f"No release {version} in {store.root}; releases: {', '.join(known) or 'none'}.")
    return tagged


def _who(actor: Optional[str]) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _public_pem(private_key: Optional[signing.PrivateKey]) -> Optional[bytes]:
    if private_key is None:
        return None
    return signing.public_pem(signing.as_private_key(private_key))


def _rollback_target(moves: List[Move], tag: str) -> str:
    """The version before the current one, replaying the history as a stack (a rollback pops)."""
    stack: List[str] = []
    for move in moves:
        if move.action == ROLLBACK:
            if stack:
                stack.pop()
        else:
            stack.append(move.version)
    if len(stack) < 2:
        raise ChannelError(f"{tag} has no earlier version to roll back to (history: {', '.join(stack) or 'empty'}).")
    return stack[-2]


# (recorded moves, the version the channel is at, the digest its tag points at) -> the version to move to.
ChooseVersion = Callable[[List[Move], Optional[str], Optional[str]], Optional[str]]


def _move(store, device_class: str, channel: str, action: str, actor: Optional[str],
          private_key: Optional[signing.PrivateKey], choose: ChooseVersion) -> Optional[Move]:
    """Under the store's writer lock: reads the channel's history (verified with the writer's own key,
    so a tampered history is never extended and re-signed), asks ``choose`` for the version to
    move to (None: leave the channel alone), appends the signed entry, then
    moves the tag, each write conditional on what was read."""
    tag = channel_tag(device_class, channel)
    repository = store.repository
    with store.lock():
        tagged_history = store.get_tagged_manifest(history_tag(tag))
        previous_history = History([], None, signed=False) if tagged_history is None else _parse_history(
            store, tag, tagged_history, repository, _public_pem(private_key), adopt_v1=True)
        current = store.resolve(tag)
        last = previous_history.last
        previous_version = last.version if last else (current_version(store, device_class, channel) if current else None)
        version = choose(previous_history.moves, previous_version, current["digest"] if current else None)
        if version is None:
            return None
        descriptor, manifest = _version_descriptor(store, version)
        gated_for = manifest.get("annotations", {}).get(releases.TARGETS_ANNOTATION)
        if gated_for is not None and device_class not in gated_for.split(","):
            raise ChannelError(f"Release {version} was gated for {gated_for}, not for {device_class}; a device class "
                               "only takes a model the MCU size gate checked against it.")
        move = Move(action, version, previous_version, _who(actor),
                    datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    descriptor["digest"], last.digest if last else (current["digest"] if current else None))
        document = {"schema": HISTORY_SCHEMA, "repository": repository, "channel": tag,
                    "entries": [m.to_json() for m in previous_history.moves] + [move.to_json()]}
        envelope = signing.dsse_envelope(private_key, HISTORY_PAYLOAD_TYPE,
                                         json.dumps(document, indent=1, sort_keys=True).encode())
        envelope_bytes = json.dumps(envelope).encode()
        layer = store.put_blob(envelope_bytes, signing.DSSE_MEDIA_TYPE, {oci_layout.TITLE: "history.dsse.json"})
        if len(envelope_bytes) <= EMBED_LIMIT:  # OCI 1.1 descriptor data: a gateway reads it with the manifest
            layer["data"] = base64.b64encode(envelope_bytes).decode()
        history_manifest = store.put_manifest(oci_layout.release_manifest(
            [layer], HISTORY_ARTIFACT_TYPE, {"dev.tinyml-tfx.channel": tag}, store))
        try:
            store.tag(history_tag(tag), history_manifest, previous=previous_history.digest)
            store.tag(tag, descriptor, previous=current["digest"] if current else None)
        except oci_layout.ConcurrentWrite as err:
            raise ChannelError(f"Channel {tag} was moved by someone else while this {action} was being written, so "
                               f"it may not point at {version}: {err} Check with `tinyml-tfx list` and run the "
                               "command again.") from None
    return move


def set_channel(store, device_class: str, channel: str, version: str, actor: Optional[str] = None,
                action: str = "set", only_if_changed: bool = False,
                private_key: Optional[signing.PrivateKey] = None) -> Optional[Move]:
    """Points the channel at ``version`` and records the move in its history (signed with
    ``private_key``); with ``only_if_changed``, a channel whose recorded state is already
    ``version`` is left alone (no history entry) and None is returned."""
    def unless_there(moves: List[Move], previous: Optional[str], tagged: Optional[str]) -> Optional[str]:
        already = moves and previous == version and tagged == moves[-1].digest
        return None if only_if_changed and already else version

    return _move(store, device_class, channel, action, actor, private_key, unless_there)


def promote(store, device_class: str, source: str = "canary", target: str = "stable",
            version: Optional[str] = None, actor: Optional[str] = None,
            private_key: Optional[signing.PrivateKey] = None, note: Optional[str] = None) -> Move:
    """Moves ``target`` to ``version`` (default: what ``source`` points at) and records it; ``note`` (e.g.
    the canary gate's verdict, or an override of it) joins the recorded action, inside the signed history.

    Raises:
        ChannelError: nothing to promote, already there, or an older version than ``target``
            has (devices refuse a downgrade without a rollback record: use ``rollback``).
    """
    version = version or current_version(store, device_class, source)
    if version is None:
        raise ChannelError(f"Channel {channel_tag(device_class, source)} points at no release yet; push one first "
                           "or give the version to promote.")

    def forward_only(_, previous: Optional[str], __) -> str:
        if previous == version:
            raise ChannelError(f"{channel_tag(device_class, target)} already points at {version}.")
        if previous is not None and releases.version_key(version) < releases.version_key(previous):
            raise ChannelError(f"{channel_tag(device_class, target)} is at {previous}; {version} is older, and "
                               "devices refuse a downgrade that carries no signed rollback record. Use `tinyml-tfx "
                               "rollback` to go back.")
        return version

    action = f"promote from {source}" + (f" ({note})" if note else "")
    return _move(store, device_class, target, action, actor, private_key, forward_only)


def rollback(store, device_class: str, channel: str = "stable", actor: Optional[str] = None,
             private_key: Optional[signing.PrivateKey] = None) -> Move:
    """Points the channel back at the version it had before its current one, and records it.

    The history is replayed as a stack (a set or promote pushes, a rollback pops), so two
    rollbacks in a row go two versions back. The ``rollback`` entry, signed with the history,
    is the record that lets devices running the newer version take the older one.
    """
    tag = channel_tag(device_class, channel)
    return _move(store, device_class, channel, ROLLBACK, actor, private_key,
                 lambda moves, _, __: _rollback_target(moves, tag))


def rollback_allows(moves: List[Move], running: str, offered: str) -> bool:
    """Whether the signed history authorizes a device running ``running`` to take the older ``offered``.

    The history's trailing rollback entries (the latest moves, all rollbacks) are the records:
    together they took the channel from each of their ``from`` versions down to the last
    entry's version. A device on any of those ``from`` versions may follow them down to
    exactly that version, and to nothing else.
    """
    if not moves or moves[-1].action != ROLLBACK or moves[-1].version != offered:
        return False
    rolled_back_from = set()
    for move in reversed(moves):
        if move.action != ROLLBACK:
            break
        rolled_back_from.add(move.previous)
    return running in rolled_back_from


def channel_state(store, tag: str, descriptor: Dict[str, Any]) -> str:
    """How ``tag`` (pointing at ``descriptor``) stands against its history, for listings."""
    tagged = store.get_tagged_manifest(history_tag(tag))
    if tagged is None:
        return "no history (moved outside tinyml-tfx)"
    try:
        recorded = _parse_history(store, tag, tagged, store.repository, None)
    except ChannelError as err:
        return f"history unreadable: {err}"
    if recorded.last is None or recorded.last.digest != descriptor["digest"]:
        return "MOVED OUTSIDE tinyml-tfx (gateways refuse it)"
    return "recorded, signed" if recorded.signed else "recorded, UNSIGNED"


def list_releases(store) -> Dict[str, Any]:
    """Versions (with their key annotations) and channels (version, and whether the tag agrees with its history)."""
    tags = store.tags()
    versions = []
    for tag in sorted((t for t in tags if releases.is_version(t)), key=releases.version_key):
        manifest = store.get_manifest(tags[tag]["digest"])
        versions.append({"version": tag, "digest": tags[tag]["digest"], "annotations": manifest.get("annotations", {})})
    by_digest = {v["digest"]: v["version"] for v in versions}
    channels = {}
    for tag, descriptor in sorted(tags.items()):
        if "-" in tag and not tag.endswith((".history", ".sig")) and not releases.is_version(tag):
            channels[tag] = {"version": by_digest.get(descriptor["digest"], descriptor["digest"]),
                             "state": channel_state(store, tag, descriptor)}
    return {"versions": versions, "channels": channels}
