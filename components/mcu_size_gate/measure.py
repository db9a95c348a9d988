"""Measurements of a .tflite model under TensorFlow Lite Micro: tensor arena and MACs.

Pure library (TFLite Micro's Python interpreter and the flatbuffer schema), no TFX.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, List, Optional

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb

from components.tflite_quantizer import quantize

_RECORDED = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
# The search stops when the bracket around the smallest working arena is this tight;
# TFLM aligns its allocations to 16 bytes, so nothing finer is meaningful.
ARENA_GRANULARITY = 16


@dataclasses.dataclass(frozen=True)
class ArenaMeasurement:
    """The tensor arena a model needs under TFLite Micro, measured two ways.

    Attributes:
        smallest_bytes: the smallest arena (to ``ARENA_GRANULARITY``) with which the
            interpreter allocates and invokes; found by bisection.
        recorded_total, recorded_head, recorded_tail: what TFLM's RecordingMicroAllocator
            reports after an invoke (head: tensor buffers, shared by the memory
            planner; tail: persistent structures). The smallest working arena is at
            least the total, and can exceed it by the planner's scratch, which
            AllocateTensors needs while it plans and frees afterwards. On a 32-bit MCU
            the tail is smaller than on this 64-bit host (pointers in TFLM's structs).
        source: how the number was obtained.
    """

    smallest_bytes: int
    recorded_total: int
    recorded_head: int
    recorded_tail: int
    source: str = ("TFLite Micro Python interpreter on this host (64-bit): bisection on the arena size, "
                   "cross-checked with RecordingMicroAllocator")


def _runs(model: bytes, arena_size: int, example: np.ndarray) -> bool:
    """Whether TFLM allocates and invokes ``model`` in an arena of ``arena_size`` bytes.

    Each probe runs in a forked child: near its smallest arena, TFLM's Python interpreter can
    abort the whole process on an internal check (e.g. "All temp buffers must be freed before
    calling ResetTempAllocations()") instead of raising, and an aborted probe simply means
    "does not run".
    """
    # Loaded before the fork: initialising TFLM's extension module in a forked child of a
    # multi-threaded (TensorFlow) process crashes it.
    from tflite_micro.python.tflite_micro import runtime

    pid = os.fork()
    if pid == 0:  # the child: report by exit status only, never return into the caller's stack
        status = 1
        try:
            with quantize.captured_c_stderr():
                interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
                interpreter.set_input(example, 0)
                interpreter.invoke()
            status = 0
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status) == 0


def recorded_allocations(model: bytes, example: np.ndarray, arena_size: int) -> Dict[str, int]:
    """TFLM's RecordingMicroAllocator figures (total, head, tail) after one invoke.

    ``print_allocations`` writes them to the C-level stderr and returns nothing, so the
    file descriptor is captured and parsed.
    """
    interpreter = quantize.tflm_interpreter(model, arena_size=arena_size)
    interpreter.set_input(example, 0)
    interpreter.invoke()
    with quantize.captured_c_stderr() as log:
        interpreter.print_allocations()
    figures = {m.group(1): int(m.group(2)) for line in log for m in [_RECORDED.search(line)] if m}
    if set(figures) != {"total", "head", "tail"}:
        raise RuntimeError("TFLite Micro's recording allocator printed no arena figures: " + " | ".join(log[:5]))
    return figures


def measure_arena(model: bytes, upper_bound: Optional[int] = None) -> ArenaMeasurement:
    """Measures the tensor arena ``model`` needs: the smallest that allocates and invokes."""
    info = quantize.describe(model)
    inp = info["inputs"][0]
    example = np.zeros(inp["shape"], dtype=np.int8 if inp["dtype"] == "int8" else np.float32)
    high = upper_bound or max(len(model) * 10, 1 << 20)
    if not _runs(model, high, example):
        raise quantize.QuantizationError(f"The model does not run on TFLite Micro even with a {high}-byte arena.")
    recorded = recorded_allocations(model, example, high)
    # No arena smaller than what the recording allocator saw in use can work, and probing far
    # below it is unsafe: TFLM's Python interpreter aborts the process (not an exception) when
    # an arena cannot even hold its own structures.
    low = max(0, recorded["total"] // ARENA_GRANULARITY * ARENA_GRANULARITY - ARENA_GRANULARITY)
    high = -(-high // ARENA_GRANULARITY) * ARENA_GRANULARITY
    while high - low > ARENA_GRANULARITY:
        middle = (low + high) // 2 // ARENA_GRANULARITY * ARENA_GRANULARITY
        if _runs(model, middle, example):
            high = middle
        else:
            low = middle
    return ArenaMeasurement(high, recorded["total"], recorded["head"], recorded["tail"])


@dataclasses.dataclass(frozen=True)
class OpMacs:
    index: int
    op: str
    macs: int


def _shape(subgraph, tensor_index: int) -> List[int]:
    tensor = subgraph.Tensors(tensor_index)
    return [int(tensor.Shape(i)) for i in range(tensor.ShapeLength())]


def count_macs(model: bytes) -> List[OpMacs]:
    """Multiply-accumulates per operator, read from the flatbuffer's tensor shapes (batch 1).

    CONV_2D: out_h * out_w * out_c * k_h * k_w * in_c; DEPTHWISE_CONV_2D:
    out_h * out_w * out_c * k_h * k_w; FULLY_CONNECTED: out_units * in_units;
    other ops count their output elements (one operation each).
    """
    root = schema_fb.Model.GetRootAsModel(model, 0)
    names = {code: name for name, code in vars(schema_fb.BuiltinOperator).items() if not name.startswith("_")}
    subgraph = root.Subgraphs(0)
    result = []
    for index in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(index)
        code = root.OperatorCodes(operator.OpcodeIndex())
        op = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
        output = _shape(subgraph, operator.Outputs(0))
        if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            _, out_h, out_w, out_c = output
            weights = _shape(subgraph, operator.Inputs(1))  # conv: [out_c, kh, kw, in_c]; dw: [1, kh, kw, out_c]
            kernel = weights[1] * weights[2]
            macs = out_h * out_w * out_c * kernel * (weights[3] if op == "CONV_2D" else 1)
        elif op == "FULLY_CONNECTED":
            weights = _shape(subgraph, operator.Inputs(1))  # [out_units, in_units]
            macs = int(np.prod(output[:-1])) * weights[0] * weights[1]
        else:
            macs = int(np.prod(output)) if output else 0
        result.append(OpMacs(index, op, int(macs)))
    return result
