"""TFLite Micro's greedy memory planner, replayed in Python.

TFLM places every non-constant tensor, and every scratch buffer a kernel requests, in the
arena's head with ``GreedyMemoryPlanner`` (tensorflow/lite/micro/memory_planner/
greedy_memory_planner.cc): buffers sorted by size, largest first (ties: the later buffer
first), each put at the lowest offset where it does not overlap in time with a buffer
already placed. Lifetimes come from ``AllocationInfoBuilder::MarkAllocationLifetimes``
(micro_allocation_info.cc): graph inputs live from step 0, operator ``i`` is step ``i + 1``,
a tensor lives from the step that writes it to the last step that reads it, graph
outputs to the last step, and a scratch buffer only during its operator's step. Sizes are
rounded up to 16 bytes (``MicroArenaBufferAlignment``).

Replaying it lets the size gate plan buffers that the kernels of another build request
(CMSIS-NN's scratch buffers) exactly as TFLM would; a test checks the replay against the
head TFLM's recording allocator reports for the same model.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Sequence, Tuple

from components.tflm import model as tflm_model

BUFFER_ALIGNMENT = 16


@dataclasses.dataclass(frozen=True)
class Buffer:
    """One buffer to plan: size in bytes (already aligned) and the first and last step using it."""

    size: int
    first: int
    last: int
    label: str = ""


def align(size: int, alignment: int = BUFFER_ALIGNMENT) -> int:
    return (size + alignment - 1) // alignment * alignment


def plan(buffers: Sequence[Buffer]) -> Tuple[int, List[int]]:
    """Offsets TFLM's greedy planner gives ``buffers`` (in order) and the head size they need."""
    count = len(buffers)
    if not count:
        return 0, []
    # TFLM fills its sort array from the tail, then bubble-sorts by size, descending and stable.
    order = list(range(count))[::-1]
    order.sort(key=lambda i: -buffers[i].size)
    offsets = [0] * count
    by_offset: List[Tuple[int, int]] = []
    for rank, wanted in enumerate(order):
        need = buffers[wanted]
        candidate = 0
        if rank:
            for offset, placed in by_offset:
                other = buffers[placed]
                if other.first > need.last or need.first > other.last:
                    continue
                if offset - candidate >= need.size:
                    break
                candidate = max(candidate, offset + other.size)
        offsets[wanted] = candidate
        by_offset.append((candidate, wanted))
        by_offset.sort(key=lambda entry: entry[0])
    return max(offsets[i] + buffers[i].size for i in range(count)), offsets


def tensor_buffers(model: bytes) -> List[Buffer]:
    """The main subgraph's tensors TFLM plans in the head, with their lifetimes."""
    tensors = tflm_model.tensors(model)
    operators = tflm_model.operators(model)
    inputs, outputs = tflm_model.io_tensor_indices(model)
    first: Dict[int, int] = {}
    last: Dict[int, int] = {}
    for index in inputs:
        first.setdefault(index, 0)
        last[index] = 0
    for operator in operators:
        step = operator.index + 1
        for tensor in operator.outputs:
            first.setdefault(tensor.index, step)
        for tensor in operator.inputs:
            if tensor is not None:
                last[tensor.index] = step
        for tensor in operator.outputs:
            last[tensor.index] = step
    final = len(operators)
    for index in outputs:
        first.setdefault(index, final)
        last[index] = final
    return [Buffer(align(t.bytes), first[t.index], last[t.index], t.name) for t in tensors
            if not t.constant and not t.variable and t.bytes and t.index in first]


def scratch_buffers(sizes: Iterable[Tuple[int, int]]) -> List[Buffer]:
    """Scratch buffers (operator index, bytes) as TFLM plans them: alive during their operator only."""
    return [Buffer(align(size), index + 1, index + 1, f"scratch of operator {index}") for index, size in sizes
            if size > 0]


def planned_head(model: bytes, scratch: Iterable[Tuple[int, int]] = ()) -> int:
    """The arena head TFLM's planner needs for ``model``'s tensors plus ``scratch`` (operator index, bytes)."""
    return plan(tensor_buffers(model) + scratch_buffers(scratch))[0]
