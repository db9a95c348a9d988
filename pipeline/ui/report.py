"""The run report: one self-contained HTML page, and a model card, for one pipeline run.

Everything is read from the run's artifacts (found through ML Metadata by
``run_local.summarise``); plots are matplotlib PNGs embedded as data URIs, so the page
needs no network.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from components import tfrecords
from components.ota import model_card
from pipeline import pipeline as tinyml_pipeline
from pipeline.config import PipelineConfig
from pipeline.tasks.common.training import HISTORY_FILE

REPORT_FILE = "report.html"
REPORT_TEMPLATE = "report.html.j2"
MODEL_CARD_FILE = model_card.MODEL_CARD_FILE


# ----------------------------------------------------------------------------- reading

def _read_json(path: str) -> Optional[Any]:
    import tensorflow as tf

    if not path or not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return json.load(f)


def _anomalies(uri: Optional[str]) -> Dict[str, List[str]]:
    """Per split, one line per anomaly that TFDV recorded."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found: Dict[str, List[str]] = {}
    if not uri:
        return found
    for split_dir in sorted(tf.io.gfile.glob(os.path.join(uri, "Split-*"))):
        path = os.path.join(split_dir, "SchemaDiff.pb")
        if not tf.io.gfile.exists(path):
            continue
        with tf.io.gfile.GFile(path, "rb") as f:
            anomalies = anomalies_pb2.Anomalies.FromString(f.read())
        found[os.path.basename(split_dir)[len("Split-"):]] = [
            f"{feature}: {info.short_description}" for feature, info in sorted(anomalies.anomaly_info.items())]
    return found


def _feature_examples(transformed_uri: Optional[str], labels: Sequence[str], shape, count: int = 6):
    """A few eval feature maps with their labels, one per class where possible."""
    import tensorflow as tf

    if not transformed_uri:
        return []
    files = tf.io.gfile.glob(os.path.join(transformed_uri, "Split-eval", "*"))
    spec = {"features": tf.io.FixedLenFeature([shape[0] * shape[1]], tf.float32),
            "label_id": tf.io.FixedLenFeature([], tf.int64)}
    chosen, seen = [], set()
    for record in tfrecords.record_dataset(files).take(2000):
        example = tf.io.parse_single_example(record, spec)
        label = int(example["label_id"])
        if label not in seen:
            seen.add(label)
            chosen.append((labels[label] if 0 <= label < len(labels) else str(label),
                           example["features"].numpy().reshape(shape)))
        if len(chosen) == count:
            break
    return chosen


# ----------------------------------------------------------------------------- plots

def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _examples_plot(counts: Dict[str, Dict[str, int]]) -> str:
    plt = _plt()
    labels = sorted({label for split in counts.values() for label in split})
    fig, ax = plt.subplots(figsize=(8, 3))
    bottom = np.zeros(len(labels))
    for split, per_label in counts.items():
        values = np.array([per_label.get(label, 0) for label in labels])
        ax.bar(labels, values, bottom=bottom, label=split)
        bottom += values
    ax.set_ylabel("examples")
    ax.legend()
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def _feature_maps_plot(examples) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, len(examples), figsize=(2.2 * len(examples), 2.6))
    for ax, (label, feature_map) in zip(np.atleast_1d(axes), examples):
        ax.imshow(feature_map.T, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("frame", fontsize=8)
        ax.set_yticks([])
    return _png(fig)


def _history_plot(history: Dict[str, List[float]]) -> str:
    plt = _plt()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3))
    for key, ax in (("loss", loss_ax), ("accuracy", acc_ax)):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                ax.plot(range(1, len(history[prefix + key]) + 1), history[prefix + key], style,
                        label="train" if not prefix else "eval")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    return _png(fig)


def _confusion_plot(matrix: List[List[int]], labels: Sequence[str], title: str) -> str:
    plt = _plt()
    m = np.array(matrix)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    return _png(fig)


def _budget_plot(rows: List[Dict[str, Any]]) -> str:
    plt = _plt()
    from matplotlib import ticker

    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.6))
    names = [r["board"] for r in rows]
    for ax, kind in zip(axes, ("ram", "flash")):
        used = [r[f"{kind}_used"] / 1024 for r in rows]
        available = [r[f"{kind}_total"] / 1024 for r in rows]
        ax.barh(names, available, color="#e6e6e6", label="available")
        ax.barh(names, used, color=["#2a9d8f" if u <= a else "#e63946" for u, a in zip(used, available)],
                label="model + reserve")
        ax.set_xscale("log")
        # Label whole decades only: within less than a decade matplotlib labels minor ticks too, and
        # their labels run into each other.
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, numticks=6))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(f"{kind.upper()} (KiB, log scale)")
    # Below the charts, where it covers no bar.
    handles, legend_labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, loc="lower center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.subplots_adjust(bottom=0.22)
    return _png(fig)


def longest_trained(trained: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The candidates trained for the most epochs: the search's winner is chosen among these
    (``components/model_search/tuner.py``), and only trials of one fidelity compare fairly."""
    def epochs(r):
        return int(r["hyperparameters"].get("tuner/epochs", 0) or 0)

    top = max((epochs(r) for r in trained), default=0)
    return [r for r in trained if epochs(r) == top]


def pareto_front(trained: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The trained candidates no other beats on both eval accuracy and estimated latency, fastest first."""
    def latency(r):
        return r["cost_latency_ms"] if r["cost_latency_ms"] is not None else float("inf")

    front = [r for r in trained if not any(
        o is not r and o["val_accuracy"] >= r["val_accuracy"] and latency(o) <= latency(r)
        and (o["val_accuracy"] > r["val_accuracy"] or latency(o) < latency(r)) for o in trained)]
    return sorted(front, key=latency)


def _search_plot(results: Dict[str, Any], max_latency_ms: Optional[float]) -> str:
    """Eval accuracy against estimated latency per candidate (colour: tensor arena), budgets and winner marked."""
    plt = _plt()
    candidates = results["candidates"]
    trained = [r for r in candidates if r["status"] == "trained"]
    rejected = [r for r in candidates if r["status"] == "rejected" and r["cost_latency_ms"] is not None]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    if trained:
        points = ax.scatter([r["cost_latency_ms"] for r in trained], [r["val_accuracy"] for r in trained],
                            c=[r["cost_arena_bytes"] / 1024 for r in trained], cmap="viridis", s=36,
                            label="trained candidate")
        fig.colorbar(points, ax=ax, label="tensor arena (KiB)")
        front = pareto_front(longest_trained(trained))
        ax.plot([r["cost_latency_ms"] for r in front], [r["val_accuracy"] for r in front], "-", color="#2a9d8f",
                lw=1, label="Pareto front (longest-trained)")
    floor = min([r["val_accuracy"] for r in trained] or [0.0])
    if rejected:
        ax.scatter([r["cost_latency_ms"] for r in rejected], [floor] * len(rejected), marker="x", color="#e63946",
                   s=24, label="rejected before training (breaks a budget)")
    winner, reference = results["summary"].get("winner"), results["summary"].get("reference")
    if winner:
        ax.scatter([winner["cost_latency_ms"]], [winner["val_accuracy"]], marker="*", s=260, color="#f4a261",
                   edgecolor="black", label="winner", zorder=5)
    if reference and reference["cost_latency_ms"] is not None:
        ax.axvline(reference["cost_latency_ms"], color="grey", ls=":", label="pre-search default (latency)")
    if max_latency_ms:
        ax.axvline(max_latency_ms, color="#e63946", ls="--", label=f"latency budget {max_latency_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("estimated latency on the target board (ms, log scale)")
    ax.set_ylabel("eval accuracy (search fidelity)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.18, 1.0))
    return _png(fig)


def _search_section(summary, config: PipelineConfig) -> Optional[Dict[str, Any]]:
    if not summary.search:
        return None
    from components.model_search.executor import SEARCH_RESULTS_JSON

    results = _read_json(os.path.join(str(summary.search["uri"]), SEARCH_RESULTS_JSON))
    if not results:
        return None
    trained = [r for r in results["candidates"] if r["status"] == "trained"]
    finalists = longest_trained(trained)
    winner = results["summary"].get("winner") or {}

    def row(r):
        shape = ", ".join(f"{k} {v}" for k, v in sorted(r["hyperparameters"].items()) if not k.startswith("tuner/"))
        return (r["candidate"], _fmt(r["val_accuracy"]), _fmt(r["cost_latency_ms"], 1),
                f"{r['cost_arena_bytes']:,}", f"{r['cost_flash_used'] / 1024:.1f}", f"{r['cost_macs']:,}",
                r["hyperparameters"].get("tuner/epochs", ""),
                shape + ("  (winner)" if r["candidate"] == winner.get("candidate") else ""))

    return {
        "summary": results["summary"],
        "plot": _search_plot(results, config.requirements.max_latency_ms),
        "header": ("candidate", "eval accuracy", "est. latency ms", "arena B", "flash KiB", "MACs", "epochs",
                   "hyperparameters"),
        "front": [row(r) for r in pareto_front(finalists)],
        "front_epochs": finalists[0]["hyperparameters"].get("tuner/epochs", "") if finalists else "",
        "shorter_trials": len(trained) - len(finalists),
        "rejected": sum(r["status"] == "rejected" for r in results["candidates"]),
        "uri": summary.search["uri"],
    }


def _det_plot(report: Dict[str, Any]) -> str:
    """FRR against false accepts per hour over every detection threshold, the requirements and the operating point."""
    plt = _plt()
    curve, point, req = report["det_curve"], report["operating_point"], report["requirements"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([p["false_accepts_per_hour"] for p in curve], [p["false_reject_rate"] for p in curve], ".-", ms=3,
            label="thresholds 0..255")
    ax.axvline(req["max_false_accepts_per_hour"], color="#e76f51", ls="--", lw=1, label="max false accepts/hour")
    ax.axhline(req["max_false_reject_rate"], color="#e9c46a", ls="--", lw=1, label="max false-reject rate")
    ax.plot([point["false_accepts_per_hour"]], [point["false_reject_rate"]], "o", color="#2a9d8f", ms=8,
            label=f"operating point (threshold {point['threshold']})")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false accepts per hour")
    ax.set_ylabel("false-reject rate")
    ax.legend(fontsize=7)
    return _png(fig)


def _timeline_plot(timeline: Dict[str, Any], keywords: Sequence[str], threshold: int) -> str:
    """A stretch of one stream: waveform and ground truth, every class's score, the average and detections."""
    plt = _plt()
    fig, (wave_ax, score_ax, avg_ax) = plt.subplots(3, 1, figsize=(10, 5.6), sharex=True,
                                                     gridspec_kw={"height_ratios": [1.2, 1.2, 1]})
    step = timeline["envelope_ms"] / 1000
    t0 = timeline["start_ms"] / 1000
    x = t0 + step * np.arange(len(timeline["envelope_min"]))
    wave_ax.fill_between(x, timeline["envelope_min"], timeline["envelope_max"], color="#264653", lw=0)
    for event in timeline["events"]:
        keyword = event["label"] in keywords
        wave_ax.axvspan(event["start_ms"] / 1000, event["end_ms"] / 1000, color="#2a9d8f" if keyword else "#bbbbbb",
                        alpha=0.3)
        wave_ax.text(event["start_ms"] / 1000, 0.95, event["label"][:18], fontsize=7, va="top",
                     transform=wave_ax.get_xaxis_transform(), color="#1d3557" if keyword else "#666666")
    wave_ax.set_ylabel("audio")
    times = np.array(timeline["inference_ms"]) / 1000
    scores = np.array(timeline["scores"]).reshape(len(times), -1)
    for index, label in enumerate(timeline["labels"]):
        if len(times):
            # matplotlib leaves labels starting with "_" out of legends: show _silence_ as "silence".
            score_ax.plot(times, scores[:, index], "-" if label in keywords else ":", lw=1, label=label.strip("_"))
    score_ax.set_ylabel("score (0-255)")
    score_ax.legend(fontsize=6, ncol=6, loc="upper right")
    for is_keyword, style, name in ((True, "-", "averaged score, top class a keyword"),
                                    (False, ":", "averaged score, top class silence or unknown")):
        average = [a if a is not None and (top in keywords) == is_keyword else np.nan
                   for a, top in zip(timeline["average"], timeline["average_top"])]
        avg_ax.step(times, average, style, where="post", color="#264653", lw=1, label=name)
    avg_ax.axhline(threshold, color="#e76f51", ls="--", lw=1, label=f"threshold {threshold}")
    for d in timeline["detections"]:
        avg_ax.plot(d["time_ms"] / 1000, d["score"], "v", color="#2a9d8f" if d["correct"] else "#e63946", ms=7)
        avg_ax.text(d["time_ms"] / 1000, d["score"] + 6, d["label"], fontsize=7, ha="center")
    avg_ax.set_ylim(0, 275)
    avg_ax.set_ylabel("RecognizeCommands")
    avg_ax.set_xlabel(f"seconds into {timeline['stream']}")
    avg_ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


# ----------------------------------------------------------------------------- content

def release_outcome(summary, config: PipelineConfig) -> Dict[str, Any]:
    """What the run pushed (``rows``), or why it pushed nothing (``reasons``, one per refusing gate)."""
    from components.ota import releases

    release = summary.release
    if release.get("pushed"):
        annotations = (_read_json(os.path.join(str(release["uri"]), "release.json")) or {}).get("annotations", {})
        targets = [t for t in annotations.get(releases.TARGETS_ANNOTATION, "").split(",") if t]
        return {"pushed": True, "reasons": [], "rows": [
            ("version", release.get("pushed_version")),
            ("manifest digest", release.get("digest")),
            ("destination", release.get("destination")),
            ("channels", ", ".join(f"{t}-{config.release.channel}" for t in targets)),
            ("signed", "yes" if release.get("signed") else "no (pushed with allow_unsigned)"),
            ("model sha256", annotations.get(releases.MODEL_SHA256_ANNOTATION)),
            ("flash / tensor arena bytes", f"{int(annotations.get(releases.FLASH_ANNOTATION, 0)):,} / "
                                           f"{int(annotations.get(releases.ARENA_ANNOTATION, 0)):,}"),
        ]}
    reasons = []
    requirements = config.requirements
    if summary.blessed is False:
        reasons.append(f"The Evaluator did not bless the model: eval accuracy {_fmt(summary.eval_accuracy)} against "
                       f"the floor {requirements.min_accuracy} (and at most {100 * requirements.max_regression:g} "
                       "points below the previous blessed model).")
    if summary.quantization.get("blessed") is False:
        reasons.append(f"The quantizer's fidelity check refused it: {summary.quantization.get('reason')}")
    if summary.size_gate.get("blessed") is False:
        reasons.append(f"The MCU size gate refused it for {summary.size_gate.get('target')}: "
                       f"{summary.size_gate.get('reason')}")
    if summary.streaming.get("blessed") is False:
        reasons.append(f"The StreamingEvaluator refused it: {summary.streaming.get('reason')}")
    if release and not reasons:
        reasons.append("The OtaPusher ran but found a blessing negative.")
    if not reasons:
        reasons.append("The run stopped before the OtaPusher (see the components above).")
    return {"pushed": False, "rows": [], "reasons": reasons}


def device_table(model_file: str, gate_report: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The quantized model against every known board: RAM, flash and estimated latency.

    The arena comes from the size gate's report of the same run when there is one
    (it measured this very model); otherwise it is measured here.
    """
    from components.mcu_size_gate import calibration, devices, gate, measure

    with open(model_file, "rb") as f:
        model = f.read()
    arena = None
    if gate_report and gate_report.get("model_bytes") == len(model):
        arena = measure.ArenaMeasurement(**gate_report["arena"])
    max_latency = (gate_report or {}).get("latency_model", {}).get("max_latency_ms")
    analysis = gate.analyse(model, list(devices.load_catalogue().values()), max_latency_ms=max_latency, arena=arena)
    rows = [{"board": v.board, "core": v.core, "ram_used": v.ram_used, "ram_total": v.ram_total,
             "flash_used": v.flash_used, "flash_total": v.flash_total, "latency_ms": v.latency_ms,
             "latency_low_ms": v.latency_low_ms, "latency_high_ms": v.latency_high_ms, "basis": v.latency_basis,
             "arena_bytes": v.arena_bytes, "scratch_bytes": v.cmsis_nn_scratch_bytes,
             "inferences_per_second": v.inferences_per_second, "fits": v.fits, "reasons": v.reasons}
            for v in analysis.verdicts]
    return {"arena": analysis.arena, "macs": analysis.macs, "rows": rows,
            "engine": calibration.ENGINE}


def _latency_cell(row: Dict[str, Any]) -> str:
    if row["latency_ms"] is None:
        return "not calibrated"
    band = (f" ({row['latency_low_ms']:.1f}–{row['latency_high_ms']:.1f})"
            if row["latency_low_ms"] is not None and row["latency_high_ms"] is not None else "")
    return f"{row['latency_ms']:.1f}{band}"


def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _schema_origin(config: PipelineConfig) -> str:
    return f"curated schema {config.data.schema}" if config.data.schema else "schema SchemaGen inferred from this data"


def _data_section(summary, config: PipelineConfig, ingestion: Dict[str, Any]) -> Dict[str, Any]:
    uris = summary.artifact_uris
    labels = list(config.data.labels)
    counts = ingestion.get("examples", {})
    splits = list(counts)
    classes = sorted({label for per in counts.values() for label in per})
    rows = ([[label] + [counts[split].get(label, 0) for split in splits] for label in classes]
            + [["total"] + [sum(counts[split].values()) for split in splits]]) if counts else []
    anomalies = _anomalies(uris.get(tinyml_pipeline.VALIDATOR, {}).get("anomalies"))
    examples = _feature_examples(uris.get(tinyml_pipeline.TRANSFORM, {}).get("transformed_examples"), labels,
                                 config.family.model_input_shape(config))
    return {
        "header": ["class"] + splits, "rows": rows, "plot": _examples_plot(counts) if counts else None,
        "skipped": [(item["file"], item["reason"]) for item in ingestion.get("skipped", [])],
        "anomalies": [(split, line) for split, found in anomalies.items() for line in found],
        "schema_origin": _schema_origin(config),
        "feature_maps": _feature_maps_plot(examples) if examples else None,
    }


def _test_section(summary, labels: List[str]) -> Optional[Dict[str, Any]]:
    """The held-out test split's figures (TestSetEvaluator), per class; None when it did not run."""
    if not summary.test:
        return None
    report = _read_json(os.path.join(str(summary.test["uri"]), "test_report.json"))
    if not report:
        return None
    per_class = model_card.precision_recall(report["confusion_quantized"], labels)
    return {"examples": report["examples"], "float_accuracy": _fmt(report["float_accuracy"]),
            "quantized_accuracy": _fmt(report["quantized_accuracy"]), "report": report,
            "header": ("class", "test examples", "precision int8", "recall int8"),
            "per_class": [(r["label"], r["support"], _fmt(r["precision"], 3), _fmt(r["recall"], 3))
                          for r in per_class]}


def _model_section(summary, labels: List[str], history, quant: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    section: Dict[str, Any] = {"eval_accuracy": _fmt(summary.eval_accuracy),
                               "history_plot": _history_plot(history) if history else None,
                               "fidelity": None, "confusion": None, "test": _test_section(summary, labels)}
    if not quant:
        return section
    fidelity, mode = quant["fidelity"], quant["mode"]
    section["fidelity"] = [
        ("float (SavedModel)", _fmt(fidelity["float_accuracy"])),
        (f"{mode} (TFLite Micro)", _fmt(fidelity["quantized_accuracy"])),
        ("drop (points)", f"{100 * fidelity['accuracy_drop']:.2f}"),
        ("agreement float vs quantized", _fmt(fidelity["agreement"])),
        ("TFLM vs desktop TFLite disagreements", fidelity["tflm_tflite_disagreements"]),
    ]
    if fidelity.get("confusion_float"):  # absent in reports of quantizers from before they were recorded
        float_pr = model_card.precision_recall(fidelity["confusion_float"], labels)
        quant_pr = model_card.precision_recall(fidelity["confusion_quantized"], labels)
        section["confusion"] = {"float": _confusion_plot(fidelity["confusion_float"], labels, "float"),
                                "quantized": _confusion_plot(fidelity["confusion_quantized"], labels, mode)}
        section["per_class_header"] = ("class", "eval examples", "precision float", "recall float",
                                       f"precision {mode}", f"recall {mode}")
        section["per_class"] = [(f["label"], f["support"], _fmt(f["precision"], 3), _fmt(f["recall"], 3),
                                 _fmt(q["precision"], 3), _fmt(q["recall"], 3)) for f, q in zip(float_pr, quant_pr)]
    return section


def _device_section(device: Optional[Dict[str, Any]], quant: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if not device or not quant:
        return None
    return {
        "model_bytes": quant["model_bytes"], "macs": device["macs"], "arena": device["arena"],
        "ops": ", ".join(f"{o['name']} v{o['version']}" for o in quant["ops"]),
        "plot": _budget_plot(device["rows"]),
        "engine": device["engine"],
        "header": ("board", "core", "RAM KiB (arena with CMSIS-NN scratch + reserve)",
                   "flash KiB (model + TFLM runtime, kernels and their read-only data + reserve)",
                   "latency ms, estimated (band)", "estimate rests on", "verdict"),
        "rows": [(r["board"], r["core"], f"{r['ram_used'] / 1024:.1f} / {r['ram_total'] / 1024:.0f}",
                  f"{r['flash_used'] / 1024:.1f} / {r['flash_total'] / 1024:.0f}", _latency_cell(r),
                  r["basis"] or "–", "fits" if r["fits"] else "does not fit: " + "; ".join(r["reasons"]))
                 for r in device["rows"]],
    }


def streaming_report(summary) -> Optional[Dict[str, Any]]:
    """The StreamingEvaluator's ``streaming_report.json`` of the run, when it has one."""
    from components.streaming_evaluator import postprocessing

    uri = summary.streaming.get("uri")
    return _read_json(os.path.join(uri, postprocessing.REPORT_FILE)) if uri else None


def _streaming_section(report: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if not report:
        return None
    point, s, br, comp = report["operating_point"], report["settings"], report["breakdown"], report["composition"]
    ms = lambda value: "–" if value is None else f"{value:.0f}"  # noqa: E731
    timing = report["timing"]
    return {
        "report": report, "det_plot": _det_plot(report),
        "timeline_plot": _timeline_plot(report["timeline"], report["keywords"], point["threshold"]),
        "operating_point": [
            ("detection threshold (0..255)", point["threshold"]),
            ("false accepts per hour", f"{point['false_accepts_per_hour']:.2f} ({point['false_accepts']} in "
                                       f"{comp['audio_seconds'] / 60:.1f} min; 95% upper bound "
                                       f"{point['false_accepts_per_hour_upper_95']:.2f})"),
            ("false-reject rate", f"{point['false_reject_rate']:.3f} ({point['misses']} of "
                                  f"{point['keyword_occurrences']} keyword occurrences missed)"),
            ("detection delay after the keyword's end (median / 90th percentile, ms)",
             f"{ms(br['delay']['median_ms'])} / {ms(br['delay']['p90_ms'])}"),
            ("inference stride", f"{s['inference_stride_ms']} ms ({s['inference_stride_source']})"),
            ("RecognizeCommands", f"averaging window {s['average_window_ms']} ms, suppression "
                                  f"{s['suppression_ms']} ms, minimum count {s['minimum_count']}"),
            ("false accepts by what they fell on", ", ".join(f"{k} {v}" for k, v in
                                                            br["false_accepts_by_context"].items()) or "none"),
            ("time", f"{timing['wall_seconds']:.1f} s for {timing['audio_seconds'] / 60:.1f} min of audio, "
                     f"{timing['inferences']:,} inferences on TFLite Micro ({timing['realtime_factor']}x real time, "
                     f"{timing['workers']} processes)"),
        ],
        "per_keyword": [(k, v["occurrences"], _fmt(v["false_reject_rate"], 3), v["false_accepts"], ms(v["median_ms"]),
                         ms(v["p90_ms"])) for k, v in br["per_keyword"].items()],
        "per_snr": [(f"{snr} dB", v["occurrences"], f"{v['false_reject_rate']:.3f}")
                    for snr, v in br["per_snr_db"].items()],
    }


def build_report(summary, config: PipelineConfig) -> Dict[str, Any]:
    """Gathers the report's content from the run's artifacts: the template's context (also for tests)."""
    uris = summary.artifact_uris
    labels = list(config.data.labels)
    ingestion = _read_json(summary.ingestion_report) or {"examples": {}, "skipped": []}
    quant_uri = summary.quantization.get("uri") if summary.quantization else None
    quant_report = _read_json(os.path.join(quant_uri, "quantization_report.json")) if quant_uri else None
    history = _read_json(os.path.join(uris.get(tinyml_pipeline.TRAINER, {}).get("model_run", ""), HISTORY_FILE))
    gate_uri = uris.get(tinyml_pipeline.SIZE_GATE, {}).get("report")
    gate_report = _read_json(os.path.join(gate_uri, "device_report.json")) if gate_uri else None
    device = device_table(os.path.join(quant_uri, "model.tflite"), gate_report) if quant_uri else None
    comparison = None
    if summary.baseline_accuracy is not None:
        delta = (summary.eval_accuracy or 0) - summary.baseline_accuracy
        comparison = [("eval accuracy", _fmt(summary.baseline_accuracy), _fmt(summary.eval_accuracy),
                       f"{100 * delta:+.2f} points")]
    return {
        "run": summary,
        "config": config,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "labels": labels,
        "synthetic": tinyml_pipeline.uses_synthetic_data(config),
        "text": config.family.report_text(config),
        "ingestion": ingestion,
        "components": [(c.node_id, c.state, f"{c.seconds:.1f} s") for c in summary.components],
        "data": _data_section(summary, config, ingestion),
        "model": _model_section(summary, labels, history, quant_report),
        "quantization": quant_report,
        "device": _device_section(device, quant_report),
        "gate": gate_report,
        "release": release_outcome(summary, config),
        "comparison": comparison,
        "search": _search_section(summary, config),
        "streaming": _streaming_section(streaming_report(summary)),
    }


def render_html(content: Dict[str, Any]) -> str:
    """The report page: ``content`` (from ``build_report``) through ``templates/report.html.j2``."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.ui", "templates"), autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.get_template(REPORT_TEMPLATE).render(**content)


def model_card_markdown(summary, config: PipelineConfig, content: Dict[str, Any]) -> str:
    """The run's model card: the card a release carries, with the Evaluator's metrics and the data counts."""
    text = tinyml_pipeline.card_text(config)
    counts = content["ingestion"].get("examples", {})
    if counts:
        text = dataclasses.replace(text, data=text.data + " Examples per split: " + ", ".join(
            f"{split} {sum(per.values())}" for split, per in counts.items()) + ".")
    quant = content["quantization"] or {}
    provenance = {"pipeline": config.pipeline_name, "run": summary.run_id,
                  "TensorFlow": quant.get("tensorflow_version", "?"),
                  "TFLite Micro": quant.get("tflite_micro_version", "?"), **config.family.provenance(config)}
    test = content["model"]["test"]
    card = model_card.render(text, content["quantization"] or {}, content["gate"] or {}, provenance,
                             evaluation={"accuracy": summary.eval_accuracy, "per_class": summary.per_class_accuracy},
                             test=test["report"] if test else None)
    if content["streaming"]:
        from components.streaming_evaluator import card as streaming_card

        card = streaming_card.insert_section(card, content["streaming"]["report"])
    return card


def write_report(summary, config: PipelineConfig, out_dir: Optional[str] = None) -> str:
    """Writes report.html and model_card.md for ``summary``; returns the report's path."""
    out_dir = out_dir or os.path.join(os.path.dirname(config.metadata_path), "..", "reports",
                                      summary.run_id.replace(":", "-"))
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    content = build_report(summary, config)
    path = os.path.join(out_dir, REPORT_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(content))
    with open(os.path.join(out_dir, MODEL_CARD_FILE), "w", encoding="utf-8") as f:
        f.write(model_card_markdown(summary, config, content))
    return path
