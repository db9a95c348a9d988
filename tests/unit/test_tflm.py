"""components.tflm: reading flatbuffers, TFLM's interpreter and arena, and the replay of its memory planner."""

import os

import numpy as np
import pytest

from components.tflm import TflmError, arena, model as tflm_model, planner, runtime

MLPERF = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "components", "mcu_size_gate",
                      "calibration", "mlperf_tiny")
MLPERF_FILES = ("kws_ref_model.tflite", "vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite")


def _mlperf(name: str) -> bytes:
    with open(os.path.join(MLPERF, name), "rb") as f:
        return f.read()


@pytest.mark.parametrize("content,message", [
    (b"not a model at all", "not a TFLite flatbuffer"),
    (b"", "not a TFLite flatbuffer"),
])
def test_a_file_that_is_not_a_model_is_named_as_such(content, message):
    with pytest.raises(TflmError, match=message):
        tflm_model.describe(content)
    with pytest.raises(TflmError, match=message):
        runtime.interpreter(content)


def test_a_truncated_model_is_refused_not_crashed_on(tiny_int8_model):
    with pytest.raises(TflmError):
        tflm_model.operators(tiny_int8_model[:64])


def test_operators_carry_the_shapes_and_options_kernels_read(tiny_int8_model):
    ops = tflm_model.operators(tiny_int8_model)
    conv = next(o for o in ops if o.name == "CONV_2D")
    assert conv.inputs[1].shape == (4, 3, 3, 1) and conv.inputs[1].constant
    assert conv.outputs[0].shape == (1, 8, 4, 4) and not conv.outputs[0].constant
    assert conv.options == {"stride": (1, 1), "padding": "SAME", "dilation": (1, 1)}
    assert conv.inputs[1].per_channel  # the converter quantizes conv weights per output channel
    assert [o.index for o in ops] == list(range(len(ops)))


def test_float16_weights_fail_naming_the_op(tiny_saved_model):
    from components.tflite_quantizer import quantize

    model = quantize.convert(tiny_saved_model, "serving_features", "float16")
    with pytest.raises(TflmError, match="The failing op: DEQUANTIZE"):
        runtime.interpreter(model)


def test_smallest_arena_is_tight_and_agrees_with_the_recording_allocator(tiny_int8_model):
    measured = arena.measure_arena(tiny_int8_model)
    example = np.zeros((1, 8, 4), np.int8)
    assert runtime.runs(tiny_int8_model, measured.smallest_bytes, example)
    assert not runtime.runs(tiny_int8_model, measured.smallest_bytes - arena.ARENA_GRANULARITY - 1, example)
    # The recording allocator's total is what stays allocated after AllocateTensors; the arena must
    # also hold the memory planner's scratch while it plans, so the smallest working arena is at
    # least the recorded total and exceeds it only by that transient scratch.
    assert measured.recorded_head + measured.recorded_tail == measured.recorded_total
    assert measured.recorded_total - arena.ARENA_GRANULARITY <= measured.smallest_bytes
    assert measured.smallest_bytes - measured.recorded_total < 4096
    # int8 activations: the planner's head holds at least the largest two live tensors (conv in/out)
    assert measured.recorded_head >= 8 * 4 * 4 + 8 * 4


def test_the_greedy_planner_places_buffers_as_worked_out_by_hand():
    buffers = [planner.Buffer(32, 0, 1), planner.Buffer(64, 1, 2), planner.Buffer(32, 2, 3), planner.Buffer(16, 3, 3)]
    # Largest first: the 64 at 0. The first 32 overlaps it in time (step 1) -> at 64; the second 32
    # overlaps the 64 (step 2) but not the first 32 -> also at 64; the 16 lives at step 3 with the
    # second 32 only -> in the gap at 0.
    head, offsets = planner.plan(buffers)
    assert offsets == [64, 0, 64, 0] and head == 96
    assert planner.plan([]) == (0, [])
    assert planner.align(1) == 16 and planner.align(16) == 16 and planner.align(17) == 32


@pytest.mark.parametrize("name", MLPERF_FILES)
def test_the_planner_replay_reproduces_the_head_tflm_records(name):
    model = _mlperf(name)
    recorded = arena.recorded_allocations(model, runtime.zero_input(model), runtime.default_arena_size(model))
    assert planner.planned_head(model) == recorded["head"]


def test_the_planner_replay_reproduces_the_tiny_model(tiny_int8_model):
    measured = arena.measure_arena(tiny_int8_model)
    assert planner.planned_head(tiny_int8_model) == measured.recorded_head
    # a scratch buffer during the largest operator raises the head by at most its own size
    scratch = planner.planned_head(tiny_int8_model, [(0, 1000)])
    assert measured.recorded_head < scratch <= measured.recorded_head + planner.align(1000)
