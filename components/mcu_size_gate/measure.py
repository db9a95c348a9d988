"""What a model asks of a board, read from its flatbuffer: MACs per operator and work per op class.

Pure library (the flatbuffer through ``components.tflm.model``), no interpreter; the
arena is measured on TFLite Micro by ``components.tflm.arena``.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Sequence

import numpy as np

from components.tflm import arena as tflm_arena, model as tflm_model

MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL")

# The op classes the latency model costs separately, after the kernel CMSIS-NN runs for them,
# and what one unit of their work is.
OP_CLASSES = ("conv_2d", "conv_2d_1x1", "depthwise_conv_2d", "fully_connected", "pooling", "elementwise",
              "softmax", "data_movement")
WORK_UNITS = {"conv_2d": "MAC", "conv_2d_1x1": "MAC", "depthwise_conv_2d": "MAC", "fully_connected": "MAC",
              "pooling": "window element", "elementwise": "output element", "softmax": "element",
              "data_movement": "output element"}
_POOLING = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D")
_REDUCTIONS = ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD")
_SOFTMAX = ("SOFTMAX", "LOG_SOFTMAX")
# Ops that only move or re-type data (TFLM's RESHAPE may even run in place).
_DATA_MOVEMENT = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE", "CONCATENATION", "PAD", "PADV2",
                  "MIRROR_PAD", "STRIDED_SLICE", "SLICE", "TRANSPOSE", "PACK", "UNPACK", "SPLIT", "SPLIT_V",
                  "GATHER", "GATHER_ND", "SHAPE", "BROADCAST_TO", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
                  "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "CAST", "ZEROS_LIKE", "FILL")


@dataclasses.dataclass(frozen=True)
class OpMacs:
    index: int
    op: str
    macs: int


@dataclasses.dataclass(frozen=True)
class OpWork:
    """One operator's cost class and its work in that class's unit (``WORK_UNITS``)."""

    index: int
    op: str
    op_class: str
    work: int


def _macs(operator: tflm_model.Operator) -> int:
    output = operator.outputs[0].shape
    if operator.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        weights = operator.inputs[1].shape  # conv: [out_c, kh, kw, in_c]; depthwise: [1, kh, kw, out_c]
        per_output = weights[1] * weights[2] * (weights[3] if operator.name == "CONV_2D" else 1)
        return int(np.prod(output)) * per_output
    if operator.name == "FULLY_CONNECTED":
        weights = operator.inputs[1].shape  # [out_units, in_units]
        return int(np.prod(output[:-1])) * weights[0] * weights[1]
    if operator.name == "TRANSPOSE_CONV":
        weights = operator.inputs[1].shape  # [out_c, kh, kw, in_c]; inputs[2] is the input
        return operator.inputs[2].elements * weights[0] * weights[1] * weights[2]
    if operator.name == "BATCH_MATMUL":
        return int(np.prod(output)) * operator.inputs[0].shape[-1]
    return int(np.prod(output)) if output else 0


def count_macs(model: bytes) -> List[OpMacs]:
    """Multiply-accumulates per operator, read from the flatbuffer's tensor shapes (batch 1).

    CONV_2D: out_h * out_w * out_c * k_h * k_w * in_c; DEPTHWISE_CONV_2D:
    out_h * out_w * out_c * k_h * k_w; FULLY_CONNECTED: out_units * in_units;
    other ops count their output elements (one operation each).

    Raises:
        components.tflm.TflmError: when ``model`` is not a readable TFLite flatbuffer.
    """
    return macs_of(tflm_model.operators(model))


def macs_of(operators: Sequence[tflm_model.Operator]) -> List[OpMacs]:
    """``count_macs`` for operators already read."""
    return [OpMacs(o.index, o.name, _macs(o)) for o in operators]


def model_macs(macs_per_op: Iterable[OpMacs]) -> int:
    """The MACs of the multiply-accumulate ops (``MAC_OPS``)."""
    return sum(m.macs for m in macs_per_op if m.op in MAC_OPS)


def classify(operator: tflm_model.Operator) -> OpWork:
    """The cost class of one operator and its work.

    Convolutions with a 1x1 kernel and no dilation are apart: CMSIS-NN runs them as a plain
    matrix product (``arm_convolve_1x1_s8_fast``, or ``arm_convolve_1x1_s8`` when strided),
    the others through im2col (``arm_convolve_s8``).
    """
    name, output = operator.name, operator.outputs[0]
    if name == "CONV_2D":
        weights = operator.inputs[1].shape
        pointwise = (weights[1], weights[2]) == (1, 1) and tuple(operator.options.get("dilation", (1, 1))) == (1, 1)
        return OpWork(operator.index, name, "conv_2d_1x1" if pointwise else "conv_2d", _macs(operator))
    if name == "TRANSPOSE_CONV":
        return OpWork(operator.index, name, "conv_2d", _macs(operator))
    if name == "DEPTHWISE_CONV_2D":
        return OpWork(operator.index, name, "depthwise_conv_2d", _macs(operator))
    if name in ("FULLY_CONNECTED", "BATCH_MATMUL"):
        return OpWork(operator.index, name, "fully_connected", _macs(operator))
    if name in _POOLING:
        window = operator.options.get("filter", (1, 1))
        return OpWork(operator.index, name, "pooling", output.elements * window[0] * window[1])
    if name in _REDUCTIONS:
        return OpWork(operator.index, name, "pooling", operator.inputs[0].elements)
    if name in _SOFTMAX:
        return OpWork(operator.index, name, "softmax", output.elements)
    if name in _DATA_MOVEMENT:
        return OpWork(operator.index, name, "data_movement", output.elements)
    return OpWork(operator.index, name, "elementwise", output.elements)


def op_work(operators: Sequence[tflm_model.Operator]) -> List[OpWork]:
    """``classify`` for every operator."""
    return [classify(o) for o in operators]


def work_by_class(work: Iterable[OpWork]) -> Dict[str, int]:
    """Total work per op class (every class present, zero when the model has none)."""
    totals = {c: 0 for c in OP_CLASSES}
    for item in work:
        totals[item.op_class] += item.work
    return totals


# The run report rebuilds the gate's arena measurement from device_report.json with this name.
ArenaMeasurement = tflm_arena.ArenaMeasurement
