"""A summary record as the monitoring pipeline's tf.Example features (plain Python, no TensorFlow).

Per record (one device, one period):

- ``top_class``: the period's inferences per arg-max class as ``SHARE_RESOLUTION`` string values,
  each class repeated in proportion to its share (largest remainders), so that every device-period
  weighs the same in TFDV's value counts and the L-infinity comparator sees the fleet's mean shares;
- ``top_score_bin``: the top-score histogram the same way (``bin_00`` .. ``bin_15``);
- ``mean_<channel>`` and ``var_<channel>``: the channel's mean and variance over the period
  (Jensen-Shannon divergence compares their distributions across device-periods);
- ``detections_per_hour``, ``windows``, ``period``, and the identity strings (not compared).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from components.telemetry import summary as summary_lib

SHARE_RESOLUTION = 100
TOP_CLASS = "top_class"
TOP_SCORE_BIN = "top_score_bin"
DETECTIONS_PER_HOUR = "detections_per_hour"
IDENTITY = ("device_id", "device_class", "model_version")
STATISTICS = ("mean", "var")


def categorical_features() -> List[str]:
    """The features compared with the L-infinity distance."""
    return [TOP_CLASS, TOP_SCORE_BIN]


def numeric_features(channels: Sequence[str]) -> List[str]:
    """The features compared with the Jensen-Shannon divergence: each channel's mean and variance."""
    return [f"{stat}_{c}" for c in channels for stat in STATISTICS]


def shares(counts: Sequence[int], resolution: int = SHARE_RESOLUTION) -> List[int]:
    """``counts`` scaled to integers summing to ``resolution`` (largest remainders; ties to the lower index)."""
    total = sum(counts)
    if total <= 0:
        return [0] * len(counts)
    exact = [c * resolution / total for c in counts]
    whole = [int(e) for e in exact]
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - whole[i]), i))
    for i in order[:resolution - sum(whole)]:
        whole[i] += 1
    return whole


def bin_name(index: int) -> str:
    return f"bin_{index:02d}"


def features(record: Dict[str, Any]) -> Dict[str, Any]:
    """The example's features of one (validated) summary record: name -> list of str, int or float."""
    classes = list(record["top_class_counts"])
    class_shares = shares([record["top_class_counts"][c] for c in classes])
    bin_shares = shares(record["score_histogram"])
    out: Dict[str, Any] = {name: [record[name]] for name in IDENTITY}
    out[TOP_CLASS] = [c for c, n in zip(classes, class_shares) for _ in range(n)]
    out[TOP_SCORE_BIN] = [bin_name(i) for i, n in enumerate(bin_shares) for _ in range(n)]
    for channel, mean, var in zip(record["channels"], record["feature_mean"], record["feature_var"]):
        out[f"mean_{channel}"] = [float(mean)]
        out[f"var_{channel}"] = [float(var)]
    out[DETECTIONS_PER_HOUR] = [3600.0 * sum(record.get("detections", {}).values()) / record["period_seconds"]]
    out["windows"] = [int(record["windows"])]
    out["period"] = [int(record["period"])]
    return out


assert summary_lib.SCORE_BINS == 16  # bin_name's two digits
