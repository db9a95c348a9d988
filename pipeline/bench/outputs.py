"""Digests of what the data stages write, independent of how a runner laid it out.

Two runs of ExampleGen, StatisticsGen and Transform over the same data are the same
computation when these digests agree, whichever Beam runner ran them and with how many
workers. What a runner may legitimately change is left out:

- examples (raw and transformed): the shard count and the order of records in and across
  shards, and protobuf's map order inside a record (a ``tf.train.Example``'s features
  map serializes in an order that varies from process to process). The digest is over the
  sorted deterministic serializations: the same multiset of examples gives the same digest.
- statistics: the order of the features in a dataset's statistics, and the last bits of
  floating-point aggregates: a mean summed over partitions in another order can differ by
  an ulp (seen: -24.38855049826882 against -24.388550498268824 with two threads).
  ``statistics_digest`` is exact; ``rounded_statistics_digest`` rounds every float to
  ``STATISTICS_DIGITS`` significant digits, and ``compare_statistics`` says which holds.
- statistics that come from TFDV's mergeable sketches: the quantiles sketch (every numeric
  feature's histograms and median) and, with ``use_sketch_based_topk_uniques``, the top-k sketch
  (the counts of a feature with more distinct values than it keeps, e.g. the clips' file
  names). A sketch's estimate depends on how the data were cut into bundles before the partial
  sketches were merged, so another worker count gives other estimates within the sketch's
  error (measured at 3x with two worker processes: histogram boundaries within 1.7e-4 relative,
  the median within 8.6e-6, file names' top counts 2 against 1; every other count the same).
  ``exact_statistics_digest`` leaves those fields out and rounds the rest: it is the part of
  the statistics a runner must not change.
- the transform graph: the numeric suffixes TensorFlow gives traced functions
  (``__inference_..._812``), which count the functions traced before in that process,
  and ``fingerprint.pb``, SavedModel's hash of the graph bytes that carry those suffixes.
  Functions are renamed by their rank among functions of the same stem; the variables,
  assets and schemas are compared byte for byte.

What a runner's layout does change is what a Trainer reads first: its dataset lists a split's files,
shuffles that list with its seed and interleaves the files, so the shard files and the order of
records in them decide the order of training, and so the trained model. ``read_order_digest``
is over exactly that (file names, and every record in file order), reported apart from the
digests above.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Dict, Iterator, List, Optional, Tuple

SAVED_MODEL_FILE = "saved_model.pb"
FINGERPRINT_FILE = "fingerprint.pb"
STATISTICS_FILE = "FeatureStats.pb"
STATISTICS_DIGITS = 10                 # significant digits of floats in rounded_statistics_digest
STATISTICS_RELATIVE_TOLERANCE = 1e-12  # compare_statistics: floats this close are float-summation noise
_FUNCTION_SUFFIX = re.compile(r"^(.*?)_(\d+)$")


@dataclasses.dataclass(frozen=True)
class RecordsDigest:
    """A multiset of tf.Examples: how many, and a digest of their sorted canonical forms."""

    count: int
    sha256: str


def _record_files(folder: str) -> List[str]:
    import tensorflow as tf

    return sorted(os.path.join(folder, name) for name in tf.io.gfile.listdir(folder)
                  if not tf.io.gfile.isdir(os.path.join(folder, name)))


def _records(folder: str) -> Iterator[Tuple[str, bytes]]:
    """(file name, record) of every record in ``folder``'s TFRecord files, files in name order, gzipped or not."""
    from components import tfrecords

    for path in _record_files(folder):
        for record in tfrecords.record_dataset([path]):
            yield os.path.basename(path), record.numpy()


def _canonical_digest(record: bytes) -> bytes:
    """The sha256 of a serialized tf.Example in its deterministic serialization (protobuf map order ignored)."""
    import tensorflow as tf

    return hashlib.sha256(tf.train.Example.FromString(record).SerializeToString(deterministic=True)).digest()


def split_digests(split_folder: str) -> Tuple[RecordsDigest, str]:
    """``examples_digest`` and ``read_order_digest`` of one split, reading its files once."""
    read_order = hashlib.sha256()
    digests, current_file = [], None
    for name, record in _records(split_folder):
        if name != current_file:
            read_order.update(name.encode() + b"\0")
            current_file = name
        digest = _canonical_digest(record)
        read_order.update(digest)
        digests.append(digest)
    total = hashlib.sha256()
    for digest in sorted(digests):
        total.update(digest)
    return RecordsDigest(count=len(digests), sha256=total.hexdigest()), read_order.hexdigest()


def examples_digest(split_folder: str) -> RecordsDigest:
    """The digest of the tf.Examples in one split's folder (every TFRecord file in it, gzipped or not)."""
    return split_digests(split_folder)[0]


def read_order_digest(split_folder: str) -> str:
    """A digest of what a reader of one split sees, in order: each file's name and its records in file order.

    Two writes of the same examples agree only if they made the same files with the same records in the
    same order (protobuf's map order inside a record is still ignored). A file with no records adds nothing.
    """
    return split_digests(split_folder)[1]


def read_statistics(statistics_file: str):
    """A TFDV statistics file (``FeatureStats.pb``) with each dataset's features in a fixed order."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import statistics_pb2

    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    with tf.io.gfile.GFile(statistics_file, "rb") as f:
        statistics.ParseFromString(f.read())
    for dataset in statistics.datasets:
        features = sorted(dataset.features,
                          key=lambda f: (f.path.SerializeToString(deterministic=True), f.name))
        del dataset.features[:]
        dataset.features.extend(features)
    return statistics


def _round_floats(message, digits: int) -> None:
    from google.protobuf.descriptor import FieldDescriptor

    floating = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)
    for field, value in message.ListFields():
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                items = list(value.values()) if field.message_type.fields_by_name["value"].message_type else []
                for item in items:
                    _round_floats(item, digits)
            else:
                for item in (value if repeated else [value]):
                    _round_floats(item, digits)
        elif field.type in floating:
            rounded = [float(f"{v:.{digits}g}") for v in (value if repeated else [value])]
            if repeated:
                value[:] = rounded
            else:
                setattr(message, field.name, rounded[0])


def statistics_digest(statistics_file: str) -> str:
    """The exact digest of a TFDV statistics file, features in a fixed order."""
    return hashlib.sha256(read_statistics(statistics_file).SerializeToString(deterministic=True)).hexdigest()


def rounded_statistics_digest(statistics_file: str, digits: Optional[int] = None) -> str:
    """The digest of a TFDV statistics file with every float rounded to ``digits`` significant digits."""
    return _rounded_digest(read_statistics(statistics_file), digits)


def _rounded_digest(statistics, digits: Optional[int]) -> str:
    _round_floats(statistics, digits or STATISTICS_DIGITS)
    return hashlib.sha256(statistics.SerializeToString(deterministic=True)).hexdigest()


def exact_statistics_digest(statistics_file: str, digits: Optional[int] = None) -> str:
    """The rounded digest of a TFDV statistics file without the fields TFDV estimates with sketches.

    Left out: every numeric feature's histograms and median (TFDV's quantiles sketch), and the top
    values and rank histogram of a string feature with more distinct values than the rank histogram
    lists (there the top-k sketch's counts are estimates: a file name seen once can count 2).
    Kept: counts, presence, min, max, mean, standard deviation, uniques, lengths, and the top values
    of features whose values all fit (labels, words, speakers).
    """
    statistics = read_statistics(statistics_file)
    for dataset in statistics.datasets:
        for feature in dataset.features:
            if feature.HasField("num_stats"):
                del feature.num_stats.histograms[:]
                feature.num_stats.ClearField("median")
            strings = feature.string_stats
            if feature.HasField("string_stats") and strings.unique > len(strings.rank_histogram.buckets):
                # More distinct values than the sketch lists: its counts are Misra-Gries estimates.
                strings.ClearField("rank_histogram")
                strings.ClearField("top_values")
    return _rounded_digest(statistics, digits)


@dataclasses.dataclass(frozen=True)
class StatisticsComparison:
    """How two statistics files compare: byte for byte (features in order), or within float rounding."""

    identical: bool
    max_relative_difference: float     # over the float fields that differ; 0.0 when identical
    other_differences: List[str]       # lines that differ otherwise (counts, strings, structure)

    @property
    def equal(self) -> bool:
        """Identical, or differing only in floats by at most ``STATISTICS_RELATIVE_TOLERANCE``."""
        return not self.other_differences and self.max_relative_difference <= STATISTICS_RELATIVE_TOLERANCE


def compare_statistics(file_a: str, file_b: str) -> StatisticsComparison:
    """Compares two TFDV statistics files field by field (text form, features in a fixed order)."""
    from google.protobuf import text_format

    a, b = (text_format.MessageToString(read_statistics(f)).splitlines() for f in (file_a, file_b))
    if a == b:
        return StatisticsComparison(True, 0.0, [])
    if len(a) != len(b):
        return StatisticsComparison(False, 0.0, [f"{len(a)} lines against {len(b)}: the structure differs"])
    worst, others = 0.0, []
    for line_a, line_b in zip(a, b):
        if line_a == line_b:
            continue
        name_a, _, value_a = line_a.partition(": ")
        name_b, _, value_b = line_b.partition(": ")
        try:
            x, y = float(value_a), float(value_b)
        except ValueError:
            others.append(f"{line_a.strip()} / {line_b.strip()}")
            continue
        if name_a != name_b:
            others.append(f"{line_a.strip()} / {line_b.strip()}")
            continue
        worst = max(worst, abs(x - y) / max(abs(x), abs(y)))
    return StatisticsComparison(False, worst, others)


def canonical_function_names(names: List[str]) -> Dict[str, str]:
    """Maps traced function names to names without TensorFlow's trace counter.

    ``foo_812`` and ``foo_845`` become ``foo#0`` and ``foo#1`` (their rank by counter among
    the functions named ``foo_<n>``); a name without a numeric suffix stays as it is.
    """
    by_stem: Dict[str, List[tuple]] = {}
    for name in names:
        match = _FUNCTION_SUFFIX.match(name)
        if match:
            by_stem.setdefault(match.group(1), []).append((int(match.group(2)), name))
    mapping = {name: name for name in names}
    for stem, numbered in by_stem.items():
        for rank, (_, name) in enumerate(sorted(numbered)):
            mapping[name] = f"{stem}#{rank}"
    return mapping


def saved_model_digest(saved_model_file: str) -> str:
    """The digest of a ``saved_model.pb`` with its traced functions renamed canonically and sorted."""
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(saved_model_file, "rb") as f:
        model.ParseFromString(f.read())
    names = sorted({function.signature.name for graph in model.meta_graphs
                    for function in graph.graph_def.library.function})
    mapping = canonical_function_names(names)
    text = text_format.MessageToString(model)
    if names:
        # Longest first, and never followed by a digit: "foo_81" must not match inside "foo_812".
        pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r"(?!\d)")
        text = pattern.sub(lambda m: mapping[m.group(0)], text)
    canonical = text_format.Parse(text, saved_model_pb2.SavedModel())
    for graph in canonical.meta_graphs:
        functions = sorted(graph.graph_def.library.function, key=lambda f: f.signature.name)
        del graph.graph_def.library.function[:]
        graph.graph_def.library.function.extend(functions)
    return hashlib.sha256(canonical.SerializeToString(deterministic=True)).hexdigest()


def transform_graph_digest(transform_graph_folder: str) -> Dict[str, str]:
    """Digest per file of a Transform graph artifact (relative path -> sha256), the graph canonically."""
    import tensorflow as tf

    digests: Dict[str, str] = {}
    for directory, _, files in tf.io.gfile.walk(transform_graph_folder):
        for name in files:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, transform_graph_folder)
            if name == FINGERPRINT_FILE:
                continue
            if name == SAVED_MODEL_FILE:
                digests[relative] = saved_model_digest(path)
            else:
                with tf.io.gfile.GFile(path, "rb") as f:
                    digests[relative] = hashlib.sha256(f.read()).hexdigest()
    return dict(sorted(digests.items()))


def data_stage_digests(artifact_uris: Dict[str, Dict[str, str]], example_gen_id: str,
                       splits: List[str]) -> Dict[str, object]:
    """The digests of a run's data stages, from its artifact URIs (node id -> output key -> URI).

    Returns:
        ``{"examples": {split: RecordsDigest}, "statistics": {split: sha256}, "statistics_rounded":
        {split: sha256}, "statistics_exact": {split: sha256}, "transformed_examples": {split: RecordsDigest},
        "transform_graph": {file: sha256}}``, and the ``read_order_digest`` of both kinds of examples
        (``examples_read_order``, ``transformed_examples_read_order``: {split: sha256}),
        with the parts whose component did not run left out.
    """
    result: Dict[str, object] = {}
    examples = artifact_uris.get(example_gen_id, {}).get("examples")
    if examples:
        both = {s: split_digests(os.path.join(examples, f"Split-{s}")) for s in splits}
        result["examples"] = {s: digests[0] for s, digests in both.items()}
        result["examples_read_order"] = {s: digests[1] for s, digests in both.items()}
    statistics = artifact_uris.get("StatisticsGen", {}).get("statistics")
    if statistics:
        files = {s: os.path.join(statistics, f"Split-{s}", STATISTICS_FILE) for s in splits}
        result["statistics"] = {s: statistics_digest(f) for s, f in files.items()}
        result["statistics_rounded"] = {s: rounded_statistics_digest(f) for s, f in files.items()}
        result["statistics_exact"] = {s: exact_statistics_digest(f) for s, f in files.items()}
    transform = artifact_uris.get("Transform", {})
    if transform.get("transformed_examples"):
        both = {s: split_digests(os.path.join(transform["transformed_examples"], f"Split-{s}")) for s in splits}
        result["transformed_examples"] = {s: digests[0] for s, digests in both.items()}
        result["transformed_examples_read_order"] = {s: digests[1] for s, digests in both.items()}
    if transform.get("transform_graph"):
        result["transform_graph"] = transform_graph_digest(transform["transform_graph"])
    return result
