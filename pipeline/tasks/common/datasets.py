"""What every task family's generated dataset shares: splits by subject, atomic publication, the manifest.

A generated dataset is a folder in the layout the family's ExampleGen reads, with
``validation_list.txt``/``testing_list.txt`` naming the eval and test files and a
``DATASET.json`` manifest (its fingerprint, and ``synthetic: true`` for generated data).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from components.ingestion import EVAL, SPLIT_LISTS, TEST, TRAIN, Filesystem, gfile_filesystem, span_numbers

MANIFEST_FILE = "DATASET.json"
# With data.training_spans, the data root holds one dataset per span in folders named so; TFX's
# FileBasedDriver replaces {SPAN} and ingests the newest span (tfx/components/example_gen/utils.py).
SPAN_FOLDER = "span-{SPAN}"


@dataclasses.dataclass(frozen=True)
class LabelledSample:
    """One window a device uploaded, with its label: where its file is, the device, who labelled it."""

    path: str
    device_id: str
    label: str
    label_source: str
    name: str


def span_folder(span: int) -> str:
    """The folder name of ``span`` in a data root of spans."""
    return SPAN_FOLDER.replace("{SPAN}", str(int(span)))


def span_folders(data_root: str, fs: Optional[Filesystem] = None) -> Dict[int, str]:
    """Span number -> folder (full path) of every ``span-N`` folder of ``data_root``; {} when it has none.

    ``fs`` defaults to tf.io.gfile's (object stores as well as local folders).
    """
    fs = fs or gfile_filesystem()
    root = data_root.rstrip("/")
    return {n: f"{root}/{span_folder(n)}" for n in span_numbers(root, SPAN_FOLDER, fs)}


def dataset_folders(data_root: str, spans: bool) -> List[str]:
    """The dataset folders behind a data root: itself, or (``spans``) its span folders, oldest first."""
    return list(span_folders(data_root).values()) if spans else [data_root]


def dataset_manifests(data_root: str, spans: bool) -> List[Dict[str, object]]:
    """The manifests of the data root's datasets (``read_manifest``), oldest span first."""
    return [read_manifest(folder) for folder in dataset_folders(data_root, spans)]


def assign_speaker_splits(speaker_ids: Sequence[str], eval_fraction: float = 0.1,
                          test_fraction: float = 0.1) -> Dict[str, str]:
    """Puts every speaker in exactly one split, at least one in each when there are three or more."""
    ordered = sorted(speaker_ids, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    n = len(ordered)
    n_eval = max(1, round(n * eval_fraction)) if n >= 3 else 0
    n_test = max(1, round(n * test_fraction)) if n >= 3 else 0
    splits = {}
    for i, speaker in enumerate(ordered):
        splits[speaker] = EVAL if i < n_eval else TEST if i < n_eval + n_test else TRAIN
    return splits


def recorded_splits(manifests: Sequence[Dict[str, object]], key: str) -> Dict[str, str]:
    """Which split each id (device, speaker) has in earlier datasets: their manifests' ``key`` ({split: [ids]})."""
    splits: Dict[str, str] = {}
    for manifest in manifests:
        recorded = manifest.get(key)
        if isinstance(recorded, dict):
            for split, ids in recorded.items():
                if split in (TRAIN, EVAL, TEST) and isinstance(ids, list):
                    splits.update({str(i): split for i in ids})
    return splits


def assign_splits_keeping(ids: Sequence[str], known: Dict[str, str]) -> Dict[str, str]:
    """``assign_speaker_splits`` for the ids not in ``known``; the others keep their split. A device whose
    clips were test data in one span must not be training data in the next."""
    new = [i for i in ids if i not in known]
    return {**{i: known[i] for i in ids if i in known}, **assign_speaker_splits(new)}


@contextlib.contextmanager
def staging_dir(out_dir: str) -> Iterator[str]:
    """A fresh folder next to ``out_dir`` to generate into; removed unless published."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".generating-", dir=parent)
    try:
        yield staging
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)


def write_split_lists(folder: str, lists: Dict[str, List[str]]) -> None:
    """validation_list.txt and testing_list.txt: the eval and test splits' relative paths, sorted."""
    for split, list_name in SPLIT_LISTS.items():
        with open(os.path.join(folder, list_name), "w") as f:
            f.write("".join(line + "\n" for line in sorted(lists[split])))


def publish_dataset(staging: str, out_dir: str, manifest: Dict[str, object]) -> Dict[str, object]:
    """Writes the manifest into ``staging`` and puts it in place of ``out_dir`` (readers never
    see half a dataset); returns the manifest."""
    with open(os.path.join(staging, MANIFEST_FILE), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return manifest


def read_manifest(out_dir: str) -> Dict[str, object]:
    """The DATASET.json of a generated dataset, or {} for any other folder."""
    try:
        with open(os.path.join(out_dir, MANIFEST_FILE)) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def existing_fingerprint(out_dir: str) -> Optional[str]:
    """The fingerprint of the synthetic dataset in ``out_dir``, or None if there is none."""
    return read_manifest(out_dir).get("fingerprint")




def ensure_dataset(spec: Any, out_dir: str, generate: Callable[..., Dict[str, Any]], **kwargs) -> bool:
    """Runs ``generate(spec, out_dir, **kwargs)`` unless ``out_dir`` already holds this very dataset.

    Returns:
        True when it generated, False when the existing data was reused.
    """
    if existing_fingerprint(out_dir) == spec.fingerprint():
        return False
    generate(spec, out_dir, **kwargs)
    return True
