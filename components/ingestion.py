"""The ingestion report the ExampleGens write, and the checks that stop a run on what it shows.

Both of the project's ExampleGens write ``ingestion_report.json`` next to their splits:
``{"examples": {split: {label: count}}, "files_read": {label: count},
"skipped": [{"file", "split", "label", "reason"}], "missing_listed": [path],
"adjusted": {...}}`` (``files_read`` counts readable files, which differ from examples when
a file gives several windows or an example is generated).
A dataset whose files are mostly skipped (a wrong sample rate, a wrong timestamp unit)
would otherwise train on what is left, or on nothing, and the run would fail later with
an error that names nothing the user can fix. ``check_skipped`` stops the run at the
ExampleGen instead, with the counts and the most common reasons.
"""

from __future__ import annotations

import collections
import dataclasses
import posixpath
from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence, Tuple

from components.errors import PipelineInputError

DEFAULT_MAX_SKIPPED_FRACTION = 0.1
INGESTION_REPORT_FILE = "ingestion_report.json"  # next to the Split-* folders of the Examples artifact
TRAIN, EVAL, TEST = "train", "eval", "test"
SPLITS = (TRAIN, EVAL, TEST)
# Relative paths of the eval and test files, one a line (Speech Commands' convention); the rest is train.
SPLIT_LISTS = {EVAL: "validation_list.txt", TEST: "testing_list.txt"}

# Span-based input: the ExampleGens' execution parameters naming the span folders inside input_base
# (with {SPAN}; "" none) and how many spans up to the newest the examples hold.
SPAN_FOLDER_KEY = "span_folder"
SPANS_KEY = "spans"
SPAN_PROPERTY = "span"         # the newest span, as TFX's FileBasedDriver resolves it (utils.SPAN_PROPERTY_NAME)
SPANS_READ_PROPERTY = "spans_read"   # the Examples artifact's custom property: the spans it holds, e.g. "0,1"


def dataset_roots(exec_properties: Mapping[str, Any], fs: "Filesystem") -> List[Tuple[str, str]]:
    """The dataset folders an ExampleGen reads, as (prefix of relative paths, folder).

    Without span folders: ``[("", input_base)]``. With them: the spans from ``newest - spans + 1`` to the
    newest (the one TFX's driver resolved) whose folders exist, oldest first, each prefixed by its
    folder name so that examples' ``source`` tells the spans apart.
    """
    root = str(exec_properties["input_base"]).rstrip("/")
    pattern = exec_properties.get(SPAN_FOLDER_KEY) or ""
    if not pattern:
        return [("", root)]
    if exec_properties.get(SPAN_PROPERTY) is not None:
        newest = int(exec_properties[SPAN_PROPERTY])
    else:
        # No driver resolved {SPAN}: Kubeflow v2 runs TFX's span driver only for FileBasedExampleGen
        # subclasses (tfx/orchestration/kubeflow/v2/step_builder.py); the newest span folder it is.
        newest = max(span_numbers(root, pattern, fs), default=0)
    count = max(1, int(exec_properties.get(SPANS_KEY) or 1))
    roots = []
    for span in range(max(0, newest - count + 1), newest + 1):
        name = pattern.replace("{SPAN}", str(span))
        folder = posixpath.join(root, name)
        if span == newest or fs.isdir(folder):
            roots.append((name, folder))
    return roots


def span_numbers(root: str, pattern: str, fs: "Filesystem") -> List[int]:
    """The span numbers of ``root``'s folders named by ``pattern`` (with ``{SPAN}``; unpadded, as TFX writes them)."""
    head, _, tail = pattern.partition("{SPAN}")
    numbers = []
    for name in fs.listdir(root) if fs.isdir(root) else []:
        name = name.rstrip("/")
        middle = name[len(head):len(name) - len(tail)] if name.startswith(head) and name.endswith(tail) else ""
        if middle.isascii() and middle.isdigit() and str(int(middle)) == middle and fs.isdir(posixpath.join(root, name)):
            numbers.append(int(middle))
    return sorted(numbers)


def below_span(prefix: str, relative: str) -> str:
    """A dataset-relative path as seen from the input base: below its span folder ``prefix`` ("" none)."""
    return f"{prefix}/{relative}" if prefix else relative


def record_spans_read(examples: Any, folders: Sequence[str], exec_properties: Mapping[str, Any]) -> None:
    """Puts the spans an Examples artifact holds into ML Metadata (``spans_read``, e.g. "0,1"), and its
    ``span`` (the newest) where no driver set it."""
    pattern = exec_properties.get(SPAN_FOLDER_KEY) or ""
    if not pattern or not folders:
        return
    head, _, tail = pattern.partition("{SPAN}")
    spans = [f[len(head):len(f) - len(tail)] for f in folders]
    examples.set_string_custom_property(SPANS_READ_PROPERTY, ",".join(spans))
    if exec_properties.get(SPAN_PROPERTY) is None:
        examples.set_int_custom_property(SPAN_PROPERTY, int(spans[-1]))


@dataclasses.dataclass(frozen=True)
class Filesystem:
    """The few file operations planning needs; local paths and gs:// alike."""

    listdir: Callable[[str], Iterable[str]]
    isdir: Callable[[str], bool]
    exists: Callable[[str], bool]
    read_text: Callable[[str], str]


def gfile_filesystem() -> Filesystem:
    """File operations through tf.io.gfile, so gs://, s3:// and local paths all work."""
    import tensorflow as tf

    def read_text(path: str) -> str:
        with tf.io.gfile.GFile(path, "r") as f:
            return f.read()

    return Filesystem(listdir=tf.io.gfile.listdir, isdir=tf.io.gfile.isdir, exists=tf.io.gfile.exists,
                      read_text=read_text)


def speaker_of(file_name: str) -> str:
    """Returns the speaker id of a clip: the part of its name before ``_nohash_``."""
    stem = posixpath.splitext(posixpath.basename(file_name))[0]
    return stem.split("_nohash_")[0]


def read_split_lists(root: str, fs: Filesystem) -> Dict[str, str]:
    """The eval and test lists' entries (relative paths), each with its split; absent lists are empty."""
    listed: Dict[str, str] = {}
    for split, list_name in SPLIT_LISTS.items():
        path = posixpath.join(root, list_name)
        if not fs.exists(path):
            continue
        for line in fs.read_text(path).splitlines():
            entry = line.strip().lstrip("\ufeff")
            if entry:
                listed[entry] = split
    return listed


def missing_from_lists(root: str, fs: Filesystem) -> List[str]:
    """Split-list entries that name no file of the dataset (sorted); such entries would silently do nothing."""
    listed = read_split_lists(root, fs)
    present = set()
    for folder in {entry.split("/", 1)[0] for entry in listed if "/" in entry}:
        if fs.isdir(posixpath.join(root, folder)):
            present.update(f"{folder}/{name}" for name in fs.listdir(posixpath.join(root, folder)))
    return sorted(entry for entry in listed if entry not in present)


class TooManySkippedError(PipelineInputError):
    """Too many of the dataset's files could not be read; the message gives the counts and the reasons."""


def top_reasons(skipped: Sequence[Mapping[str, str]], count: int = 3) -> List[str]:
    """The ``count`` most common skip reasons, as "N file(s): reason" (most common first)."""
    reasons = collections.Counter(item.get("reason", "?") for item in skipped)
    return [f"{n} file(s): {reason}" for reason, n in sorted(reasons.items(), key=lambda r: (-r[1], r[0]))[:count]]


def check_skipped(report: Mapping[str, Any], max_skipped_fraction: float, component: str, report_path: str,
                  fix: str) -> None:
    """Stops the run when the dataset's readable files are too few.

    Args:
        report: the ingestion report.
        max_skipped_fraction: the largest share of files that may be skipped (``requirements``).
        component: the ExampleGen's name, for the message.
        report_path: where the full list is.
        fix: what usually causes the reasons for this ExampleGen (the settings to check).

    Raises:
        TooManySkippedError: when every file, every file of a class, or more than
            ``max_skipped_fraction`` of the files were skipped.
    """
    skipped = list(report.get("skipped", []))
    if not skipped:
        return
    written: Dict[str, int] = collections.Counter(report.get("files_read", {}))
    if "files_read" not in report:  # a report without file counts: one example per file
        for per_label in report.get("examples", {}).values():
            written.update(per_label)
    skipped_by_label = collections.Counter(item.get("label", "") for item in skipped)
    total = sum(written.values()) + len(skipped)
    reasons = "; ".join(top_reasons(skipped))
    where = f"The full list is in {report_path}. {fix}"
    if not written:
        raise TooManySkippedError(
            f"{component} could not read any of the {len(skipped)} file(s) of the dataset: {reasons}. {where}")
    lost = sorted(label for label, n in skipped_by_label.items() if label and n and not written.get(label))
    if lost:
        raise TooManySkippedError(
            f"{component} skipped every file of class(es) {', '.join(lost)} "
            f"({', '.join(f'{label}: {skipped_by_label[label]}' for label in lost)} file(s)), so the model could "
            f"not learn them: {reasons}. {where}")
    fraction = len(skipped) / total
    if fraction > max_skipped_fraction:
        raise TooManySkippedError(
            f"{component} skipped {len(skipped)} of {total} file(s) ({100 * fraction:.1f}%), more than "
            f"requirements.max_skipped_fraction ({100 * max_skipped_fraction:g}%): {reasons}. {where} If those "
            "files are really unusable, raise requirements.max_skipped_fraction.")
