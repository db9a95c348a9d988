"""The run report: one self-contained HTML page, and a model card, for one pipeline run.

Everything is read from the run's artifacts (found through ML Metadata by
``run_local.summarise``); plots are matplotlib PNGs embedded as data URIs, so the page
needs no network.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from components.ota import model_card
from pipeline import pipeline as kws_pipeline
from pipeline.config import PipelineConfig

REPORT_FILE = "report.html"
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
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(2000):
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
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.2))
    names = [r["board"] for r in rows]
    for ax, kind in zip(axes, ("ram", "flash")):
        used = [r[f"{kind}_used"] / 1024 for r in rows]
        available = [r[f"{kind}_total"] / 1024 for r in rows]
        ax.barh(names, available, color="#e6e6e6", label="available")
        ax.barh(names, used, color=["#2a9d8f" if u <= a else "#e63946" for u, a in zip(used, available)],
                label="model + reserve")
        ax.set_xscale("log")
        ax.set_title(f"{kind.upper()} (KiB, log scale)")
    axes[0].legend(loc="lower right", fontsize=7)
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
    from components.mcu_size_gate import devices, gate, measure

    with open(model_file, "rb") as f:
        model = f.read()
    arena = None
    if gate_report and gate_report.get("model_bytes") == len(model):
        arena = measure.ArenaMeasurement(**gate_report["arena"])
    max_latency = (gate_report or {}).get("latency_model", {}).get("max_latency_ms")
    analysis = gate.analyse(model, list(devices.load_catalogue().values()), max_latency_ms=max_latency, arena=arena)
    rows = [{"board": v.board, "core": v.core, "ram_used": v.ram_used, "ram_total": v.ram_total,
             "flash_used": v.flash_used, "flash_total": v.flash_total, "latency_ms": v.latency_ms,
             "inferences_per_second": v.inferences_per_second, "fits": v.fits} for v in analysis.verdicts]
    return {"arena": analysis.arena, "macs": analysis.macs, "rows": rows}


def _table(rows: List[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:0}h2{border-bottom:2px solid #2a9d8f;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;font-size:.9rem}
th{background:#f2f2f2}.banner{background:#fff3cd;border:1px solid #e0c36a;padding:.6rem 1rem;margin:1rem 0}
.ok{color:#2a9d8f;font-weight:600}.bad{color:#e63946;font-weight:600}img{max-width:100%}
"""


def build_report(summary, config: PipelineConfig) -> Dict[str, Any]:
    """Gathers the report's content from the run's artifacts (also returned for tests)."""
    uris = summary.artifact_uris
    labels = list(config.data.labels)
    ingestion = _read_json(summary.ingestion_report) or {"examples": {}, "skipped": []}
    quant_uri = summary.quantization.get("uri") if summary.quantization else None
    quant_report = _read_json(os.path.join(quant_uri, "quantization_report.json")) if quant_uri else None
    history = _read_json(os.path.join(uris.get(kws_pipeline.TRAINER, {}).get("model_run", ""), "history.json"))
    from pipeline.tasks.kws import features

    shape = (config.motion_input_shape if config.is_motion
             else features.feature_shape(kws_pipeline.frontend_params(config), config.data.clip_samples))
    gate_uri = uris.get(kws_pipeline.SIZE_GATE, {}).get("report")
    gate_report = _read_json(os.path.join(gate_uri, "device_report.json")) if gate_uri else None
    return {
        "labels": labels,
        "synthetic": kws_pipeline.uses_synthetic_data(config),
        "ingestion": ingestion,
        "anomalies": _anomalies(uris.get(kws_pipeline.VALIDATOR, {}).get("anomalies")),
        "feature_examples": _feature_examples(uris.get(kws_pipeline.TRANSFORM, {}).get("transformed_examples"),
                                              labels, shape),
        "history": history,
        "quantization": quant_report,
        "device": device_table(os.path.join(quant_uri, "model.tflite"), gate_report) if quant_uri else None,
        "gate": gate_report,
        "release": release_outcome(summary, config),
    }


def render_html(summary, config: PipelineConfig, content: Dict[str, Any]) -> str:
    """The report page."""
    labels = content["labels"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>tinyml-tfx run {html.escape(summary.run_id)}"
             f"</title><style>{_STYLE}</style></head><body>",
             f"<h1>Pipeline '{html.escape(summary.pipeline_name)}'</h1>",
             f"<p>Run {html.escape(summary.run_id)}, {summary.wall_seconds:.1f} s; config "
             f"{html.escape(config.source)}; target board {html.escape(config.target_device)}; report written "
             f"{time.strftime('%Y-%m-%d %H:%M:%S')}.</p>"]
    if content["synthetic"]:
        parts.append("<div class='banner'><b>Synthetic data.</b> This model was trained and evaluated on "
                     + ("simulated IMU gestures" if config.is_motion else "generated eSpeak NG speech")
                     + ", not on recordings of people; its figures demonstrate the "
                     "pipeline, not real-world accuracy.</div>")
    parts.append("<h2>Components</h2>" + _table(
        [(c.node_id, c.state, f"{c.seconds:.1f} s") for c in summary.components], ("component", "state", "time")))

    # Data
    ingestion = content["ingestion"]
    parts.append("<h2 id='data'>Data</h2>")
    counts = ingestion.get("examples", {})
    if counts:
        splits = list(counts)
        classes = sorted({label for per in counts.values() for label in per})
        parts.append(_table([[label] + [counts[split].get(label, 0) for split in splits] for label in classes]
                            + [["total"] + [sum(counts[split].values()) for split in splits]],
                            ["class"] + splits))
        parts.append(f"<img alt='examples per split and class' src='{_examples_plot(counts)}'>")
    skipped = ingestion.get("skipped", [])
    parts.append(f"<p>Skipped files: {len(skipped)}</p>")
    if skipped:
        parts.append(_table([(s["file"], s["reason"]) for s in skipped], ("file", "reason")))
    anomalies = content["anomalies"]
    lines = [(split, line) for split, found in anomalies.items() for line in found]
    parts.append("<p>TFDV anomalies against the curated schema: "
                 + ("<span class='ok'>none</span></p>" if not lines else f"{len(lines)}</p>" +
                    _table(lines, ("split", "anomaly"))))
    if content["feature_examples"]:
        what = (f"Model inputs ({'spectral bins' if config.motion.features == 'spectrum' else 'normalized samples'}"
                " x channels) of eval windows" if config.is_motion
                else "Feature maps (TFLite Micro audio front end, frames x channels) of eval clips")
        parts.append(f"<p>{what}:</p>"
                     f"<img alt='feature maps' src='{_feature_maps_plot(content['feature_examples'])}'>")

    # Model
    parts.append("<h2 id='model'>Model</h2>")
    verdict = ("<span class='ok'>blessed</span>" if summary.blessed else "<span class='bad'>not blessed</span>")
    parts.append(f"<p>Eval accuracy (TFMA): {_fmt(summary.eval_accuracy)} ({verdict}; floor "
                 f"{config.requirements.min_accuracy}).</p>")
    if content["history"]:
        parts.append(f"<img alt='training curves' src='{_history_plot(content['history'])}'>")
    quant = content["quantization"]
    if quant:
        fidelity = quant["fidelity"]
        parts.append(_table([
            ("float (SavedModel)", _fmt(fidelity["float_accuracy"])),
            (f"{quant['mode']} (TFLite Micro)", _fmt(fidelity["quantized_accuracy"])),
            ("drop (points)", f"{100 * fidelity['accuracy_drop']:.2f}"),
            ("agreement float vs quantized", _fmt(fidelity["agreement"])),
            ("TFLM vs desktop TFLite disagreements", fidelity["tflm_tflite_disagreements"]),
        ], ("quantization fidelity on eval", "value")))
        if "confusion_float" not in fidelity:  # a quantizer from before confusion matrices were recorded
            fidelity = {**fidelity, "confusion_float": None}
    if quant and fidelity.get("confusion_float"):
        parts.append(f"<img alt='confusion matrix float' src='{_confusion_plot(fidelity['confusion_float'], labels, 'float')}'>"
                     f"<img alt='confusion matrix int8' src='{_confusion_plot(fidelity['confusion_quantized'], labels, quant['mode'])}'>")
        float_pr = model_card.precision_recall(fidelity["confusion_float"], labels)
        quant_pr = model_card.precision_recall(fidelity["confusion_quantized"], labels)
        parts.append(_table([(f["label"], f["support"], _fmt(f["precision"], 3), _fmt(f["recall"], 3),
                              _fmt(q["precision"], 3), _fmt(q["recall"], 3)) for f, q in zip(float_pr, quant_pr)],
                            ("class", "eval examples", "precision float", "recall float",
                             f"precision {quant['mode']}", f"recall {quant['mode']}")))

    # Device
    parts.append("<h2 id='device'>Device</h2>")
    device = content["device"]
    if device and quant:
        arena = device["arena"]
        parts.append(f"<p>{quant['model_bytes']:,} bytes, {device['macs']:,} MACs per inference; tensor arena "
                     f"{arena.smallest_bytes:,} bytes measured on TFLite Micro (recording allocator "
                     f"{arena.recorded_total:,}); ops: "
                     + ", ".join(f"{o['name']} v{o['version']}" for o in quant["ops"]) + ".</p>")
        parts.append(f"<img alt='budgets per board' src='{_budget_plot(device['rows'])}'>")
        parts.append(_table([(r["board"], r["core"], f"{r['ram_used'] / 1024:.1f} / {r['ram_total'] / 1024:.0f}",
                              f"{r['flash_used'] / 1024:.1f} / {r['flash_total'] / 1024:.0f}",
                              _fmt(r["latency_ms"], 1), _fmt(r["inferences_per_second"], 1),
                              "fits" if r["fits"] else "does not fit") for r in device["rows"]],
                            ("board", "core", "RAM KiB (arena + reserve)",
                             "flash KiB (model + TFLM runtime and kernels + reserve)", "latency ms (est.)",
                             "inferences/s", "")))
        parts.append("<p>Flash adds the TFLite Micro runtime and the kernels of the model's ops (code sizes "
                     "measured on the installed TFLM build); latency is the model's MACs through a per-core cost "
                     "model calibrated on MLPerf Tiny measurements (see the size gate's report).</p>")
    else:
        parts.append("<p>No quantized model in this run.</p>")

    # Release and comparison
    parts.append("<h2 id='release'>Release</h2>")
    outcome = content["release"]
    if outcome["pushed"]:
        parts.append("<p><span class='ok'>Pushed</span> to the OTA registry:</p>"
                     + _table(outcome["rows"], ("release", "value")))
    else:
        parts.append("<p><span class='bad'>Nothing was pushed.</span></p><ul>"
                     + "".join(f"<li>{html.escape(str(reason))}</li>" for reason in outcome["reasons"]) + "</ul>")
    parts.append("<h2 id='comparison'>Comparison with the previous blessed model</h2>")
    if summary.baseline_accuracy is not None:
        delta = (summary.eval_accuracy or 0) - summary.baseline_accuracy
        parts.append(_table([("eval accuracy", _fmt(summary.baseline_accuracy), _fmt(summary.eval_accuracy),
                              f"{100 * delta:+.2f} points")], ("metric", "previous blessed", "this run", "change")))
    else:
        parts.append("<p>No previously blessed model: this is the first.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def model_card_markdown(summary, config: PipelineConfig, content: Dict[str, Any]) -> str:
    """The run's model card: the card a release carries, with the Evaluator's metrics and the data counts."""
    text = kws_pipeline.card_text(config)
    counts = content["ingestion"].get("examples", {})
    if counts:
        text = dataclasses.replace(text, data=text.data + " Examples per split: " + ", ".join(
            f"{split} {sum(per.values())}" for split, per in counts.items()) + ".")
    from pipeline.tasks.kws import features

    quant = content["quantization"] or {}
    provenance = {"pipeline": config.pipeline_name, "run": summary.run_id,
                  "TensorFlow": quant.get("tensorflow_version", "?"),
                  "TFLite Micro": quant.get("tflite_micro_version", "?"),
                  **({} if config.is_motion else
                     {"audio front-end hash": features.frontend_hash(kws_pipeline.frontend_params(config))})}
    return model_card.render(text, content["quantization"] or {}, content["gate"] or {}, provenance,
                             evaluation={"accuracy": summary.eval_accuracy, "per_class": summary.per_class_accuracy})


def write_report(summary, config: PipelineConfig, out_dir: Optional[str] = None) -> str:
    """Writes report.html and model_card.md for ``summary``; returns the report's path."""
    out_dir = out_dir or os.path.join(os.path.dirname(config.metadata_path), "..", "reports",
                                      summary.run_id.replace(":", "-"))
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    content = build_report(summary, config)
    path = os.path.join(out_dir, REPORT_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(summary, config, content))
    with open(os.path.join(out_dir, MODEL_CARD_FILE), "w", encoding="utf-8") as f:
        f.write(model_card_markdown(summary, config, content))
    return path
