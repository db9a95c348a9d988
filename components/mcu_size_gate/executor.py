"""McuSizeGate executor: measures the quantized model on TFLite Micro and judges it per board."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.blessing import write_blessing
from components.mcu_size_gate import devices, gate

QUANTIZED_MODEL_KEY = "quantized_model"
BLESSING_KEY = "blessing"
REPORT_KEY = "report"
TARGET_KEY = "target"
EXTRA_TARGETS_KEY = "extra_targets"
BOARDS_DIRS_KEY = "boards_dirs"
MAX_LATENCY_MS_KEY = "max_latency_ms"

MODEL_FILE = "model.tflite"
REPORT_JSON = "device_report.json"
REPORT_HTML = "device_report.html"


class Executor(base_executor.BaseExecutor):
    """Blesses the model when it fits the primary target; reports every target."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        quantized = artifact_utils.get_single_instance(input_dict[QUANTIZED_MODEL_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[BLESSING_KEY])
        report = artifact_utils.get_single_instance(output_dict[REPORT_KEY])

        with tf.io.gfile.GFile(os.path.join(quantized.uri, MODEL_FILE), "rb") as f:
            model = f.read()
        catalogue = devices.load_catalogue(json.loads(exec_properties.get(BOARDS_DIRS_KEY) or "[]"))
        primary = exec_properties[TARGET_KEY]
        names = [primary] + [n for n in json.loads(exec_properties.get(EXTRA_TARGETS_KEY) or "[]") if n != primary]
        targets = [devices.get_profile(name, catalogue) for name in names]

        max_latency = exec_properties.get(MAX_LATENCY_MS_KEY)
        analysis = gate.analyse(model, targets, max_latency_ms=float(max_latency) if max_latency else None)
        self._write_report(report.uri, analysis, primary)
        for verdict in analysis.verdicts:
            report.set_int_custom_property(f"fits_{verdict.board}", int(verdict.fits))
        primary_verdict = analysis.verdicts[0]
        report.set_int_custom_property("arena_bytes", analysis.arena.smallest_bytes)
        report.set_int_custom_property("target_arena_bytes", primary_verdict.arena_bytes)
        report.set_int_custom_property("flash_bytes", analysis.flash_bytes)
        report.set_int_custom_property("macs", analysis.macs)
        if primary_verdict.latency_ms is not None:
            report.set_float_custom_property("latency_ms", primary_verdict.latency_ms)
            report.set_float_custom_property("latency_high_ms", primary_verdict.latency_high_ms)
        write_blessing(blessing, quantized.uri, primary_verdict.reasons, f"fits {primary_verdict.board}",
                       "McuSizeGate")

    def _write_report(self, uri: str, analysis: gate.Analysis, primary: str) -> None:
        tf.io.gfile.makedirs(uri)
        with tf.io.gfile.GFile(os.path.join(uri, REPORT_JSON), "w") as f:
            json.dump(analysis.to_json(primary), f, indent=2)
        with tf.io.gfile.GFile(os.path.join(uri, REPORT_HTML), "w") as f:
            f.write(gate.report_html(analysis, primary))
