"""Enough examples of every class in every split, read from TFDV statistics: plain library.

TFDV's schema checks say nothing when a split is empty or a class is missing from it
(SchemaGen even infers such a schema happily); the run then fails late, in Transform or
the Trainer, with an error that names nothing a person can fix. These checks turn the
statistics StatisticsGen already computed into counts per split and class.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Sequence

from tensorflow_metadata.proto.v0 import statistics_pb2


@dataclasses.dataclass(frozen=True)
class SplitCounts:
    examples: int
    per_class: Dict[str, int]


def split_counts(statistics: statistics_pb2.DatasetFeatureStatisticsList, label_feature: str) -> SplitCounts:
    """Examples in one split's statistics, and per value of the string feature ``label_feature``."""
    if not statistics.datasets:
        return SplitCounts(0, {})
    dataset = statistics.datasets[0]
    per_class: Dict[str, int] = {}
    for feature in dataset.features:
        name = feature.path.step[-1] if feature.path.step else feature.name
        if name == label_feature and feature.HasField("string_stats"):
            for bucket in feature.string_stats.rank_histogram.buckets:
                per_class[bucket.label] = int(round(bucket.sample_count))
    return SplitCounts(int(dataset.num_examples), per_class)


def problems(counts: Mapping[str, SplitCounts], classes: Sequence[str], minimums: Mapping[str, int]) -> List[str]:
    """One line per split that is empty or has a class below its minimum (classes absent count 0)."""
    found = []
    for split, minimum in minimums.items():
        split_count = counts.get(split, SplitCounts(0, {}))
        if split_count.examples == 0:
            found.append(f"split '{split}' has no examples at all")
            continue
        short = [(label, split_count.per_class.get(label, 0)) for label in classes
                 if split_count.per_class.get(label, 0) < minimum]
        if short:
            found.append(f"split '{split}' ({split_count.examples} examples) has fewer than {minimum} of class(es) "
                         + ", ".join(f"{label} ({n})" for label, n in short))
    return found
