"""Arena and MAC measurements on the tiny classifier, whose layer shapes are known."""

import numpy as np

from components.mcu_size_gate import measure


def test_macs_match_the_layer_shapes_counted_by_hand(tiny_int8_model):
    by_op = {}
    for item in measure.count_macs(tiny_int8_model):
        by_op.setdefault(item.op, []).append(item.macs)
    # Conv2D: 4 filters 3x3 over 8x4x1, 'same': 8*4 outputs * 4 channels * 9 taps * 1 input channel
    assert by_op["CONV_2D"] == [8 * 4 * 4 * 9 * 1]
    # DepthwiseConv2D 3x3 over 8x4x4: 8*4*4 outputs * 9 taps
    assert by_op["DEPTHWISE_CONV_2D"] == [8 * 4 * 4 * 9]
    # Dense 4 -> 3
    assert by_op["FULLY_CONNECTED"] == [4 * 3]
    assert by_op["MEAN"] == [4]  # one operation per output element


def test_smallest_arena_is_tight_and_agrees_with_the_recording_allocator(tiny_int8_model):
    measured = measure.measure_arena(tiny_int8_model)
    example = np.zeros((1, 8, 4), np.int8)
    assert measure._runs(tiny_int8_model, measured.smallest_bytes, example)
    assert not measure._runs(tiny_int8_model, measured.smallest_bytes - measure.ARENA_GRANULARITY - 1, example)
    # The recording allocator's total is what stays allocated after AllocateTensors; the arena must
    # also hold the memory planner's scratch while it plans, so the smallest working arena is at
    # least the recorded total and exceeds it only by that transient scratch.
    assert measured.recorded_head + measured.recorded_tail == measured.recorded_total
    assert measured.recorded_total - measure.ARENA_GRANULARITY <= measured.smallest_bytes
    assert measured.smallest_bytes - measured.recorded_total < 4096
    # int8 activations: the planner's head holds at least the largest two live tensors (conv in/out)
    assert measured.recorded_head >= 8 * 4 * 4 + 8 * 4
