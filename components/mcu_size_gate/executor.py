"""McuSizeGate executor: measures the quantized model on TFLite Micro and judges it per board."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List

import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.blessing import write_blessing
from components.mcu_size_gate import devices, gate, measure
from components.tflite_quantizer import codegen, quantize

QUANTIZED_MODEL_KEY = "quantized_model"
BLESSING_KEY = "blessing"
REPORT_KEY = "report"
TARGET_KEY = "target"
EXTRA_TARGETS_KEY = "extra_targets"
BOARDS_DIRS_KEY = "boards_dirs"

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

        info = quantize.describe(model)
        quantize.check_tflm_ops(model, codegen.RESOLVER_METHODS)
        arena = measure.measure_arena(model)
        macs = measure.count_macs(model)
        verdicts = gate.judge(len(model), arena, devices.budgets(len(model), arena.smallest_bytes, targets))

        self._write_report(report.uri, model, info, arena, macs, verdicts, primary)
        primary_verdict = verdicts[0]
        for verdict in verdicts:
            report.set_int_custom_property(f"fits_{verdict.board}", int(verdict.fits))
        report.set_int_custom_property("arena_bytes", arena.smallest_bytes)
        report.set_int_custom_property("macs", sum(m.macs for m in macs))
        write_blessing(blessing, quantized.uri, primary_verdict.reasons, f"fits {primary_verdict.board}",
                       "McuSizeGate")

    def _write_report(self, uri, model, info, arena, macs, verdicts, primary) -> None:
        tf.io.gfile.makedirs(uri)
        content = {
            "primary_target": primary,
            "model_bytes": len(model),
            "ops": info["ops"],
            "arena": dataclasses.asdict(arena),
            "macs_total": sum(m.macs for m in macs),
            "macs_per_op": [dataclasses.asdict(m) for m in macs],
            "targets": [dataclasses.asdict(v) for v in verdicts],
            "flash_note": "model + reserve; the TFLite Micro runtime and kernels are not yet counted",
        }
        with tf.io.gfile.GFile(os.path.join(uri, REPORT_JSON), "w") as f:
            json.dump(content, f, indent=2)
        with tf.io.gfile.GFile(os.path.join(uri, REPORT_HTML), "w") as f:
            f.write(gate.report_html(len(model), arena, content["macs_total"], info["ops"], verdicts, primary))
