"""The model card (Markdown) a release carries: intended use, data, metrics, device constraints, limits.

The numbers come from the reports that travel in the release (the quantizer's fidelity on
the eval split, the size gate's budgets per board); the words come from the task, which the
pipeline hands the pusher as ``CardText``. The run report renders the same card with the
Evaluator's metrics added. Plain library: no TFX.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence

MODEL_CARD_FILE = "model_card.md"


@dataclasses.dataclass(frozen=True)
class CardText:
    """What only the task and its data can say about the model."""

    title: str
    intended_use: str
    data: str
    limitations: Sequence[str]
    labels: Sequence[str]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CardText":
        return cls(**json.loads(text))


def precision_recall(matrix: List[List[int]], labels: Sequence[str]) -> List[Dict[str, Any]]:
    """Per-class precision and recall from a [true][predicted] confusion matrix."""
    rows = []
    for i, label in enumerate(labels):
        predicted = sum(row[i] for row in matrix)
        actual = sum(matrix[i])
        rows.append({"label": label, "precision": matrix[i][i] / predicted if predicted else None,
                     "recall": matrix[i][i] / actual if actual else None, "support": int(actual)})
    return rows


def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(text: CardText, quantization: Mapping[str, Any], gate: Mapping[str, Any],
           provenance: Mapping[str, str], evaluation: Optional[Mapping[str, Any]] = None,
           test: Optional[Mapping[str, Any]] = None) -> str:
    """The card.

    Args:
        text: the task's words.
        quantization: the quantizer's ``quantization_report.json``.
        gate: the size gate's ``device_report.json``.
        provenance: name -> value lines (pipeline, run, versions, front-end hash).
        evaluation: optional Evaluator metrics: ``accuracy`` and ``per_class`` (label -> accuracy).
        test: optional: the TestSetEvaluator's ``test_report.json`` (the held-out split, measured once
            after the gates: the figure to quote).
    """
    fidelity = quantization.get("fidelity", {})
    mode = quantization.get("mode", "int8")
    lines = [f"# Model card: {text.title}", "", "## Intended use", text.intended_use, "", "## Data", text.data, "",
             "## Metrics (eval split)"]
    if evaluation and evaluation.get("accuracy") is not None:
        lines.append(f"- accuracy (TFMA Evaluator): {_fmt(evaluation['accuracy'])}")
        if evaluation.get("per_class"):
            lines.append("- accuracy per class: " + ", ".join(
                f"{label} {value:.2f}" for label, value in sorted(evaluation["per_class"].items())))
    lines.append(f"- float accuracy: {_fmt(fidelity.get('float_accuracy'))}; {mode} accuracy on TFLite Micro: "
                 f"{_fmt(fidelity.get('quantized_accuracy'))} (drop {100 * fidelity.get('accuracy_drop', 0):.2f} "
                 f"points, {fidelity.get('examples', '?')} examples)")
    if fidelity.get("confusion_quantized") and len(text.labels) == len(fidelity["confusion_quantized"]):
        lines += ["", f"| class | precision ({mode}) | recall ({mode}) | eval examples |", "|---|---|---|---|"]
        lines += [f"| {r['label']} | {_fmt(r['precision'], 3)} | {_fmt(r['recall'], 3)} | {r['support']} |"
                  for r in precision_recall(fidelity["confusion_quantized"], text.labels)]
    if test:
        lines += ["", "## Metrics (test split: held out, measured once after every gate)",
                  f"- {test['examples']} examples never used for any decision: float accuracy "
                  f"{_fmt(test['float_accuracy'])}; {mode} accuracy on TFLite Micro {_fmt(test['quantized_accuracy'])}"]
        if test.get("confusion_quantized") and len(text.labels) == len(test["confusion_quantized"]):
            lines += ["", f"| class | precision ({mode}, test) | recall ({mode}, test) | test examples |",
                      "|---|---|---|---|"]
            lines += [f"| {r['label']} | {_fmt(r['precision'], 3)} | {_fmt(r['recall'], 3)} | {r['support']} |"
                      for r in precision_recall(test["confusion_quantized"], text.labels)]
    arena = gate.get("arena", {}).get("smallest_bytes")
    lines += ["", "## Device constraints",
              f"- model: {quantization.get('model_bytes', '?'):,} bytes, {mode} input and output; ops: "
              + ", ".join(f"{o['name']} v{o['version']}" for o in quantization.get("ops", [])),
              f"- tensor arena: {arena:,} bytes (measured on TFLite Micro)" if arena else "- tensor arena: unknown",
              f"- {gate.get('macs_total', 0):,} multiply-accumulates per inference", "",
              "| board | fits | RAM used / total (KiB) | flash used / total (KiB) | latency (ms, estimated) |",
              "|---|---|---|---|---|"]
    for t in gate.get("targets", []):
        lines.append(f"| {t['board']} | {'yes' if t['fits'] else 'no'} | {t['ram_used'] / 1024:.1f} / "
                     f"{t['ram_total'] / 1024:.0f} | {t['flash_used'] / 1024:.1f} / {t['flash_total'] / 1024:.0f} | "
                     f"{_fmt(t.get('latency_ms'), 1)} |")
    lines += ["", "## Limitations"] + [f"- {item}" for item in text.limitations]
    lines += ["", "## Provenance"] + [f"- {name}: {value}" for name, value in provenance.items()] + [""]
    return "\n".join(lines)
