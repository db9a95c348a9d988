"""CMSIS-NN's scratch buffers: the get_buffer_size formulas on hand-made shapes, and the arena they add."""

import os

import pytest

from components.mcu_size_gate import scratch
from components.tflm import arena, model as tflm_model, planner, runtime

G = scratch.ConvGeometry
MLPERF = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "components", "mcu_size_gate",
                      "calibration", "mlperf_tiny")


@pytest.mark.parametrize("geometry,variant,expected", [
    # arm_convolve_s8_get_buffer_size: 2 * align4(kh * kw * in_c) * sizeof(int16) without Helium ...
    (G((1, 32, 32, 3), (3, 3, 3), (1, 32, 32, 16), padding=(1, 1)), "dsp", 2 * 28 * 2),
    (G((1, 32, 32, 3), (3, 3, 3), (1, 32, 32, 16), padding=(1, 1)), "plain", 2 * 28 * 2),
    # ... and 4 im2col columns of ceil16(kh * kw * in_c) bytes with it
    (G((1, 32, 32, 3), (3, 3, 3), (1, 32, 32, 16), padding=(1, 1)), "mve", 4 * 32),
    (G((1, 16, 16, 32), (3, 3, 32), (1, 8, 8, 64), stride=(2, 2), padding=(0, 0)), "dsp", 2 * 288 * 2),
    # 1x1 convolutions need no buffer with GCC (strided or not)
    (G((1, 24, 24, 32), (1, 1, 32), (1, 24, 24, 64)), "dsp", 0),
    (G((1, 24, 24, 32), (1, 1, 32), (1, 12, 12, 64), stride=(2, 2)), "mve", 0),
    # 1xN (input height 1): without Helium the im2col size; with Helium arm_convolve_1_x_n_s8_get_buffer_size_mve:
    # no padding, so max(kernel_x * in_c + 0, kernel_x * in_c - in_c + 0) = 3 * 4
    (G((1, 1, 16, 4), (1, 3, 4), (1, 1, 14, 8)), "dsp", 2 * 12 * 2),
    (G((1, 1, 16, 4), (1, 3, 4), (1, 1, 14, 8)), "mve", 3 * 4),
])
def test_convolution_scratch_follows_arm_convolve_wrapper_s8_get_buffer_size(geometry, variant, expected):
    assert scratch.convolve_wrapper_s8(geometry, variant)[0] == expected


def test_the_1xn_helium_buffer_counts_the_padding():
    # pad 1 on each side (total 2, even): pad_size_left = 1 * 4; max(3*4 + 4, 3*4 - 4 + 4) = 16
    geometry = G((1, 1, 16, 4), (1, 3, 4), (1, 1, 16, 8), padding=(0, 1))
    assert scratch.convolve_wrapper_s8(geometry, "mve")[0] == 16


@pytest.mark.parametrize("geometry,variant,expected", [
    # 3x3 with padding <= 1: the dedicated DSP kernel needs nothing; Helium's opt kernel 4 * 124 * 9 bytes
    (G((1, 12, 12, 64), (3, 3, 64), (1, 12, 12, 64), padding=(1, 1)), "dsp", 0),
    (G((1, 12, 12, 64), (3, 3, 64), (1, 12, 12, 64), padding=(1, 1)), "mve", 4 * 124 * 9),
    (G((1, 12, 12, 64), (3, 3, 64), (1, 12, 12, 64), padding=(1, 1)), "plain", 0),
    # 5x5: arm_depthwise_conv_s8_opt_get_buffer_size_dsp = in_c * kw * kh * sizeof(int16)
    (G((1, 12, 12, 64), (5, 5, 64), (1, 12, 12, 64), padding=(2, 2)), "dsp", 64 * 25 * 2),
    (G((1, 12, 12, 64), (5, 5, 64), (1, 12, 12, 64), padding=(2, 2)), "mve", 4 * 124 * 25),
    # one input channel, eight output channels: with Helium it runs as a convolution
    # (convolve buffer 4 * ceil16(9) + filter 8 * 3 * 3); without, not an "opt" case (in_c != out_c)
    (G((1, 12, 12, 1), (3, 3, 8), (1, 12, 12, 8), padding=(1, 1)), "mve", 4 * 16 + 8 * 9),
    (G((1, 12, 12, 1), (3, 3, 8), (1, 12, 12, 8), padding=(1, 1)), "dsp", 0),
])
def test_depthwise_scratch_follows_arm_depthwise_conv_wrapper_s8_get_buffer_size(geometry, variant, expected):
    assert scratch.depthwise_wrapper_s8(geometry, variant)[0] == expected


def test_average_pool_scratch_follows_arm_avgpool_s8_get_buffer_size():
    assert scratch.avgpool_s8(64, "dsp") == 64 * 4
    assert scratch.avgpool_s8(64, "mve") == 0 and scratch.avgpool_s8(64, "plain") == 0


def _model(name):
    with open(os.path.join(MLPERF, name), "rb") as f:
        return f.read()


def test_operators_of_a_real_model_ask_for_what_the_formulas_say():
    model = _model("kws_ref_model.tflite")
    ops = tflm_model.operators(model)
    dsp = {s.index: s for s in filter(None, (scratch.op_scratch(o, "dsp") for o in ops))}
    # first layer: 10x4 kernel over 1 channel -> im2col of 40 columns; the 25x5 average pool over 64 channels
    assert dsp[0].scratch_bytes == 2 * 40 * 2 and dsp[0].function == "arm_convolve_s8_get_buffer_size"
    assert dsp[9].scratch_bytes == 64 * 4 and dsp[9].op == "AVERAGE_POOL_2D"
    assert set(dsp) == {0, 9}  # 3x3 depthwise and 1x1 convolutions need none on DSP cores
    mve = {s.index: s for s in filter(None, (scratch.op_scratch(o, "mve") for o in ops))}
    assert {mve[i].scratch_bytes for i in (1, 3, 5, 7)} == {4 * 124 * 9}
    assert mve[11].persistent_bytes == 12 * 4 and mve[11].scratch_bytes == 0  # FC kernel sums (speed build)


def test_scratch_is_planned_with_the_tensors_as_tflm_would():
    model = _model("kws_ref_model.tflite")
    measured = arena.measure_arena(model)
    arenas = scratch.arenas_by_variant(model, measured.smallest_bytes, measured.recorded_head)
    for variant, result in arenas.items():
        assert result.arena_bytes == measured.smallest_bytes + result.added_bytes
        assert "replayed" in result.method
        persistent = sum(planner.align(s.persistent_bytes) for s in result.scratch)
        # scratch buffers live one operator at a time: they add at most the largest one
        assert 0 <= result.added_bytes - persistent <= planner.align(result.largest_scratch_bytes)
    assert arenas["mve"].added_bytes > 0
    # if the replay did not reproduce TFLM's own head, every buffer is added on top instead
    fallback = scratch.cmsis_nn_arena(model, measured.smallest_bytes, measured.recorded_head + 16, "mve")
    assert fallback.added_bytes == sum(planner.align(s.scratch_bytes) + planner.align(s.persistent_bytes)
                                       for s in fallback.scratch)
    assert "not used" in fallback.method


def test_a_float_model_asks_for_no_cmsis_nn_scratch(tiny_saved_model):
    from components.tflite_quantizer import quantize

    model = quantize.convert(tiny_saved_model, "serving_features", None)
    assert not [s for s in (scratch.op_scratch(o, "dsp") for o in tflm_model.operators(model)) if s]
    assert runtime.zero_input(model).dtype.name == "float32"
