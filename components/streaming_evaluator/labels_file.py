"""The ground-truth label file of a long recording: Audacity's label-track format.

One line per labelled stretch, tab-separated, times in seconds from the start of the
recording::

    12.340<TAB>12.810<TAB>yes
    47.002<TAB>48.950<TAB>what time is it

A label that is one of the model's keywords is a keyword occurrence; any other label marks
other speech (it is never a keyword to find, and a detection on it is a false accept). A
recording with no keyword lines is keyword-free audio: every detection in it is a false accept.
Blank lines and lines starting with ``#`` are skipped, and so are the ``\\`` frequency lines
Audacity writes for spectral selections; "Export Labels" in Audacity writes exactly this
format, so a recording can be labelled there. Plain library.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

from components.streaming_evaluator.metrics import Event


class LabelFileError(ValueError):
    """A label file that cannot be read; the message names the file, the line and the fix."""


def parse(text: str, source: str, duration_s: Optional[float] = None) -> List[Event]:
    """The events of a label file, sorted by start.

    Args:
        text: the file's content.
        source: the file's name, for messages.
        duration_s: the recording's length; labels past its end are refused.

    Raises:
        LabelFileError: naming the line and what is wrong with it.
    """
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "\\")):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3 or not fields[2].strip():
            raise LabelFileError(
                f"Label file {source}, line {number}: expected 'start<TAB>end<TAB>label' (seconds, as Audacity "
                f"exports labels), got {line.strip()[:80]!r}. Fix the line, or remove it.")
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise LabelFileError(f"Label file {source}, line {number}: the start and end must be numbers of "
                                 f"seconds, got {fields[0]!r} and {fields[1]!r}.") from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise LabelFileError(f"Label file {source}, line {number}: start {fields[0]} and end {fields[1]} must "
                                 "be seconds with 0 <= start <= end.")
        if duration_s is not None and start > duration_s:
            raise LabelFileError(f"Label file {source}, line {number}: the label starts at {start:g} s, after the "
                                 f"end of the {duration_s:.3f} s recording. Is it the label file of another recording?")
        events.append(Event(label="\t".join(fields[2:]).strip(), start_ms=int(round(start * 1000)),
                            end_ms=int(round(end * 1000))))
    return sorted(events, key=lambda e: (e.start_ms, e.end_ms))


def render(events: Sequence[Event]) -> str:
    """A label file for ``events`` (what ``parse`` reads back)."""
    return "".join(f"{e.start_ms / 1000:.3f}\t{e.end_ms / 1000:.3f}\t{e.label}\n" for e in events)
