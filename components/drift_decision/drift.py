"""Drift between the field's telemetry statistics and the reference's, with TFDV's comparators.

Plain library (the DriftDecision executor and the benchmark call ``decide``). The comparison is
TFDV's own: a schema whose categorical features carry an L-infinity ``drift_comparator`` and whose
numeric ones a Jensen-Shannon divergence comparator, handed to ``tfdv.validate_statistics`` with
the reference as ``previous_statistics``; the distances come back in the anomalies'
``drift_skew_info``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Sequence

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

LINF = "L-infinity"
VERSION_FEATURE = "model_version"   # components/telemetry/examples.py IDENTITY
JS = "Jensen-Shannon divergence"


@dataclasses.dataclass(frozen=True)
class Thresholds:
    class_distance: float
    score_distance: float
    feature_divergence: float
    min_summaries: int


@dataclasses.dataclass(frozen=True)
class Measurement:
    feature: str
    comparator: str
    value: float
    threshold: float

    @property
    def drifting(self) -> bool:
        return self.value > self.threshold


def drift_schema(class_feature: str, score_feature: str, numeric: Sequence[str],
                 thresholds: Thresholds) -> schema_pb2.Schema:
    """The schema holding only the comparators (every compared feature, nothing else to validate)."""
    schema = schema_pb2.Schema()
    for name, threshold in ((class_feature, thresholds.class_distance), (score_feature, thresholds.score_distance)):
        feature = schema.feature.add(name=name, type=schema_pb2.BYTES)
        feature.drift_comparator.infinity_norm.threshold = threshold
    for name in numeric:
        feature = schema.feature.add(name=name, type=schema_pb2.FLOAT)
        feature.drift_comparator.jensen_shannon_divergence.threshold = thresholds.feature_divergence
    return schema


def _records(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> int:
    return int(statistics.datasets[0].num_examples) if statistics.datasets else 0


def string_values(statistics: statistics_pb2.DatasetFeatureStatisticsList, feature: str) -> List[str]:
    """The values TFDV counted for a string feature (its top values), sorted."""
    for dataset in statistics.datasets:
        for f in dataset.features:
            if f.path.step and f.path.step[-1] == feature or f.name == feature:
                return sorted(v.value for v in f.string_stats.top_values)
    return []


def measure(field: statistics_pb2.DatasetFeatureStatisticsList,
            reference: statistics_pb2.DatasetFeatureStatisticsList, class_feature: str, score_feature: str,
            numeric: Sequence[str], thresholds: Thresholds) -> List[Measurement]:
    """Every compared feature's distance (TFDV's ``drift_skew_info``), in the schema's order."""
    import tensorflow_data_validation as tfdv

    schema = drift_schema(class_feature, score_feature, numeric, thresholds)
    anomalies: anomalies_pb2.Anomalies = tfdv.validate_statistics(field, schema, previous_statistics=reference)
    by_name: Dict[str, Measurement] = {}
    for info in anomalies.drift_skew_info:
        name = info.path.step[-1]
        for m in info.drift_measurements:
            comparator = LINF if m.type == anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY else JS
            by_name[name] = Measurement(name, comparator, float(m.value), float(m.threshold))
    order = [class_feature, score_feature, *numeric]
    return [by_name[n] for n in order if n in by_name]


def decide(field: statistics_pb2.DatasetFeatureStatisticsList,
           reference: statistics_pb2.DatasetFeatureStatisticsList, class_feature: str, score_feature: str,
           numeric: Sequence[str], thresholds: Thresholds) -> Dict[str, Any]:
    """Whether to retrain, why, and every measurement (JSON-able)."""
    field_records, reference_records = _records(field), _records(reference)
    field_versions, reference_versions = string_values(field, VERSION_FEATURE), string_values(reference, VERSION_FEATURE)
    unknown = [v for v in field_versions if v not in reference_versions]
    warnings = ([f"the field span holds model version(s) {', '.join(unknown)} that the reference telemetry does not "
                 f"(it has {', '.join(reference_versions) or 'none'}): a new release needs its own reference"]
                if unknown else [])
    base = {"field_summaries": field_records, "reference_summaries": reference_records,
            "thresholds": dataclasses.asdict(thresholds), "field_model_versions": field_versions,
            "reference_model_versions": reference_versions, "warnings": warnings}
    if field_records < thresholds.min_summaries:
        return {**base, "retrain": False, "drifting_features": [], "measurements": [],
                "reason": (f"too little telemetry: {field_records} summary record(s) in the span, fewer than "
                           f"monitoring.min_summaries ({thresholds.min_summaries}); no decision")}
    measurements = measure(field, reference, class_feature, score_feature, numeric, thresholds)
    compared = {m.feature for m in measurements}
    missing = [n for n in (class_feature, score_feature, *numeric) if n not in compared]
    drifting = [m for m in measurements if m.drifting]
    if drifting:
        worst = sorted(drifting, key=lambda m: m.value / m.threshold, reverse=True)
        shown = ", ".join(f"{m.feature} ({m.comparator} {m.value:.3f} > {m.threshold:g})" for m in worst[:5])
        more = f" and {len(worst) - 5} more" if len(worst) > 5 else ""
        reason = f"drift in {len(drifting)} of {len(measurements)} compared features: {shown}{more}"
    else:
        top = max(measurements, key=lambda m: m.value / m.threshold, default=None)
        reason = (f"no drift: all {len(measurements)} compared features within their thresholds" +
                  (f" (closest: {top.feature}, {top.comparator} {top.value:.3f} <= {top.threshold:g})" if top else ""))
    return {**base, "retrain": bool(drifting), "reason": reason,
            "drifting_features": [m.feature for m in drifting], "not_compared": missing,
            "measurements": [{**dataclasses.asdict(m), "drifting": m.drifting} for m in measurements]}
