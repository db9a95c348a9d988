"""ModelSearch executor: TFX's Tuner executor, plus every candidate's record in the output and in ML Metadata."""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Dict, List

import tensorflow as tf
from absl import logging
from tfx.components.tuner import executor as tuner_executor
from tfx.types import artifact_utils, standard_component_specs

SEARCH_RESULTS_JSON = "search_results.json"
SEARCH_RESULTS_CSV = "search_results.csv"


class Executor(tuner_executor.Executor):
    """Runs TFX's Tuner search, then writes what the device-aware tuner recorded."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        if tuner_executor.get_tune_args(exec_properties):
            raise ValueError("TuneArgs is not supported by ModelSearch's executor.")
        tuner = tuner_executor.search(input_dict, exec_properties, self._get_tmp_dir(), print_tuning_summary=False)
        tuner_executor.write_best_hyperparameters(tuner, output_dict)
        records = [r.to_json() for r in getattr(tuner, "records", [])]
        results = artifact_utils.get_single_instance(output_dict[standard_component_specs.TUNER_RESULTS_KEY])
        winner = tuner.winner() if hasattr(tuner, "winner") else None
        summary = {
            "candidates": len(records),
            "rejected_before_training": sum(r["status"] == "rejected" for r in records),
            "trials": sum(r["status"] == "trained" for r in records),
            "winner": winner.to_json() if winner else None,
            "reference": tuner.reference.to_json() if hasattr(tuner, "reference") else None,
            "seconds": round(getattr(tuner.oracle, "elapsed", lambda: 0.0)(), 1),
        }
        _write(results.uri, SEARCH_RESULTS_JSON, json.dumps({"summary": summary, "candidates": records}, indent=2))
        _write(results.uri, SEARCH_RESULTS_CSV, _csv(records))
        for key in ("candidates", "rejected_before_training", "trials"):
            results.set_int_custom_property(key, summary[key])
        if winner:
            results.set_float_custom_property("winner_val_accuracy", winner.val_accuracy)
            results.set_int_custom_property("winner_arena_bytes", winner.cost.arena_bytes)
            results.set_float_custom_property("winner_latency_ms", winner.cost.latency_ms or 0.0)
            results.set_string_custom_property("winner_hyperparameters", json.dumps(winner.hyperparameters,
                                                                                  sort_keys=True))
        logging.info("ModelSearch: %d candidates, %d rejected before training, %d trials; results in %s",
                     summary["candidates"], summary["rejected_before_training"], summary["trials"], results.uri)


def _write(folder: str, name: str, text: str) -> None:
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(os.path.join(folder, name), "w") as f:
        f.write(text)


def _csv(records: List[Dict[str, Any]]) -> str:
    """One row per candidate; hyperparameters as columns of their own."""
    names = sorted({k for r in records for k in r["hyperparameters"]})
    fields = [k for k in (records[0] if records else {}) if k != "hyperparameters"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(fields + [f"hp_{n}" for n in names])
    for r in records:
        writer.writerow([r[k] if not isinstance(r[k], list) else "; ".join(map(str, r[k])) for k in fields]
                        + [r["hyperparameters"].get(n, "") for n in names])
    return out.getvalue()
