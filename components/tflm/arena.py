"""The tensor arena a model needs under TensorFlow Lite Micro, measured on TFLM's interpreter."""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, Optional

import numpy as np

from components.tflm import TflmError, runtime

_RECORDED = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
# The search stops when the bracket around the smallest working arena is this tight;
# TFLM aligns its allocations to 16 bytes, so nothing finer is meaningful.
ARENA_GRANULARITY = 16
NEAR_TOTAL_MARGIN = 4096


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
    source: str = ("TFLite Micro Python interpreter on this host (64-bit), reference kernels: bisection on the "
                   "arena size, cross-checked with RecordingMicroAllocator")


def recorded_allocations(model: bytes, example: np.ndarray, arena_size: int) -> Dict[str, int]:
    """TFLM's RecordingMicroAllocator figures (total, head, tail) after one invoke.

    ``print_allocations`` writes them to the C-level stderr and returns nothing, so the
    file descriptor is captured and parsed.
    """
    interpreter = runtime.interpreter(model, arena_size=arena_size)
    interpreter.set_input(example, 0)
    interpreter.invoke()
    with runtime.captured_c_stderr() as log:
        interpreter.print_allocations()
    figures = {m.group(1): int(m.group(2)) for line in log for m in [_RECORDED.search(line)] if m}
    if set(figures) != {"total", "head", "tail"}:
        raise RuntimeError("TFLite Micro's recording allocator printed no arena figures: " + " | ".join(log[:5]))
    return figures


def _loads(model: bytes, arena_size: int) -> None:
    runtime.interpreter(model, arena_size=arena_size)


def measure_arena(model: bytes, upper_bound: Optional[int] = None) -> ArenaMeasurement:
    """Measures the tensor arena ``model`` needs: the smallest that allocates and invokes.

    Raises:
        TflmError: when the model does not run on TFLite Micro at all.
    """
    example = runtime.zero_input(model)
    high = upper_bound or max(len(model) * 10, 1 << 20)
    if not runtime.runs(model, high, example):
        try:  # raises naming the failing op when loading is the problem
            runtime.in_child(_loads, model, high)
        except runtime.TflmAborted as err:
            raise TflmError(f"The model does not run on TensorFlow Lite Micro even with a {high}-byte arena: {err} "
                            "Check the model's ops and quantization parameters (tinyml-tfx devices check).") from err
        raise TflmError(f"The model does not run on TensorFlow Lite Micro even with a {high}-byte arena.")
    recorded = runtime.in_child(recorded_allocations, model, example, high)
    # No arena smaller than what the recording allocator saw in use can work, and probing far
    # below it only costs time (and makes TFLM abort more often; see runtime.runs).
    low = max(0, recorded["total"] // ARENA_GRANULARITY * ARENA_GRANULARITY - ARENA_GRANULARITY)
    high = -(-high // ARENA_GRANULARITY) * ARENA_GRANULARITY
    # The smallest working arena exceeds the recorded total by the planner's transient scratch at most
    # (hundreds of bytes on the models measured): a tight upper bound first halves the probes.
    near = low + NEAR_TOTAL_MARGIN
    if near < high and runtime.runs(model, near, example):
        high = near
    while high - low > ARENA_GRANULARITY:
        middle = (low + high) // 2 // ARENA_GRANULARITY * ARENA_GRANULARITY
        if runtime.runs(model, middle, example):
            high = middle
        else:
            low = middle
    return ArenaMeasurement(high, recorded["total"], recorded["head"], recorded["tail"])
