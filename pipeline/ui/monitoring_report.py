"""The monitoring report: drift over time, field against reference, detections per device and version,
the decision log. HTML in the run report's style (``templates/monitoring.html.j2``), plots as inline PNGs."""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict, List, Sequence

import numpy as np

from components.telemetry import canary, ingest
from pipeline import continuous, monitoring
from pipeline.config import PipelineConfig
from pipeline.ui.report import _plt, _png

TEMPLATE = "monitoring.html.j2"
REPORT_FILE = "monitoring.html"


def _drift_plot(history: Sequence[Dict[str, Any]]) -> str:
    """Per decision (field span): each comparator's largest distance, over its threshold (1 = at the threshold)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    spans = [d.get("field_span") for d in history]
    groups = {"top_class (L-infinity)": lambda m: m["feature"] == "top_class",
              "top_score_bin (L-infinity)": lambda m: m["feature"] == "top_score_bin",
              "channel statistics, largest (Jensen-Shannon)": lambda m: m["comparator"].startswith("Jensen")}
    for name, wanted in groups.items():
        ratios = [max((m["value"] / m["threshold"] for m in d["measurements"] if wanted(m)), default=np.nan)
                  for d in history]
        ax.plot(spans, ratios, marker="o", label=name)
    ax.axhline(1.0, color="#e63946", linestyle="--", label="threshold")
    if all(isinstance(span, int) for span in spans):
        ax.set_xticks(spans)
    ax.set_xlabel("field span")
    ax.set_ylabel("distance / threshold")
    ax.legend(fontsize=7)
    return _png(fig)


def _shares(summaries: Sequence[Dict[str, Any]], labels: Sequence[str]) -> List[float]:
    """The mean over records of each class's share of inferences (what the L-infinity comparator sees)."""
    rows = [[s["top_class_counts"].get(c, 0) / max(1, s["windows"]) for c in labels] for s in summaries]
    return np.mean(rows, axis=0).tolist() if rows else [0.0] * len(labels)


def _class_plot(field: Sequence[float], reference: Sequence[float], labels: Sequence[str]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, reference, 0.4, label="reference")
    ax.bar(x + 0.2, field, 0.4, label="field (latest span)")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of inferences (top class)")
    ax.legend(fontsize=7)
    return _png(fig)


def build(config: PipelineConfig) -> Dict[str, Any]:
    """The report's content from ML Metadata (decisions) and the telemetry datasets."""
    history = [d for d in monitoring.decisions(config) if d.get("measurements") is not None]
    labels = list(config.data.labels)
    field_dir = monitoring.dataset_dir(config, monitoring.FIELD_DATASET)
    spans = ingest.spans(field_dir)
    latest = ingest.read_span(field_dir, spans[-1]) if spans else []
    reference = ingest.read_all(monitoring.dataset_dir(config, monitoring.REFERENCE_DATASET))
    versions = []
    for version in sorted({s["model_version"] for s in latest}):
        f = canary.figures(latest, version)
        versions.append((version, f.devices, f.summaries, f"{f.detections_per_hour:.1f}",
                         "-" if f.confirmed_per_hour is None else f"{f.confirmed_per_hour:.1f}",
                         "-" if f.confirmed_share is None else f"{f.confirmed_share:.2f}", f"{f.mean_top_score:.1f}"))
    per_device = sorted(((s["device_id"], s["model_version"], s["windows"], sum(s.get("detections", {}).values()),
                          sum(s["confirmed"].values()) if "confirmed" in s else "-")
                         for s in latest), key=lambda row: -row[3])
    log = [(d.get("field_span"), "RETRAIN" if d["retrain"] else "no", d["field_summaries"],
            ", ".join(d["drifting_features"][:6]) + (" ..." if len(d["drifting_features"]) > 6 else ""), d["reason"])
           for d in history]
    field_shares, reference_shares = _shares(latest, labels), _shares(reference, labels)
    retrain_rows = []
    for entry in continuous.retrains(config):
        accuracy = entry["accuracy"]
        for span in sorted(accuracy["after"]):
            before, after = accuracy["before"].get(span), accuracy["after"][span]
            retrain_rows.append((
                entry.get("recorded", ""), f"{entry['before']['run_id']} (spans {entry['before']['spans_read']})",
                f"{entry['after']['run_id']} (spans {entry['after']['spans_read']})", span, after["examples"],
                f"{before['accuracy']:.4f}" if before else "-", f"{after['accuracy']:.4f}",
                f"{after['accuracy'] - before['accuracy']:+.4f}" if before else "-"))
    return {
        "name": config.pipeline_name, "written": datetime.datetime.now().isoformat(timespec="seconds"),
        "thresholds": config.monitoring, "spans": spans,
        "drift_plot": _drift_plot(history) if history else None, "log": log,
        "class_plot": _class_plot(field_shares, reference_shares, labels) if latest and reference else None,
        "class_rows": [(c, f"{r:.3f}", f"{f:.3f}") for c, r, f in zip(labels, reference_shares, field_shares)],
        "versions": versions, "devices": per_device[:20], "device_count": len(per_device),
        "retrains": retrain_rows,
    }


def write(config: PipelineConfig, out_dir: str) -> str:
    """Writes the report to ``out_dir/monitoring.html``; returns its path."""
    import jinja2

    os.makedirs(out_dir, exist_ok=True)
    environment = jinja2.Environment(loader=jinja2.PackageLoader("pipeline.ui", "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    path = os.path.join(out_dir, REPORT_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(environment.get_template(TEMPLATE).render(**build(config)))
    return path
