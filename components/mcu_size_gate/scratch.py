"""The scratch buffers CMSIS-NN kernels ask TFLite Micro for, and the arena they make a model need.

The arena the size gate measures runs TFLM's reference kernels (the ``tflite-micro`` wheel).
A firmware built with CMSIS-NN kernels (TFLM's ``OPTIMIZED_KERNEL_DIR=cmsis_nn``) runs
other kernels, and some of them request a scratch buffer in the arena during ``Prepare``
(``context->RequestScratchBufferInArena``). TFLM's memory planner places those buffers
with the tensors, alive during their operator only, so they can raise the arena.

The sizes mirror the functions the TFLM kernels call, in ARM-software/CMSIS-NN
(commit 99f736a63036613032f9b70de36b493bcd7802d4) and tensorflow/tflite-micro (commit
90b983c2b3f1480642e040bbd2ddb37b998f3424):

* CONV_2D (tflite-micro ``kernels/cmsis_nn/conv.cc``, ``Prepare``):
  ``arm_convolve_wrapper_s8_get_buffer_size`` (CMSIS-NN
  ``Source/ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c``): a 1x1 unit-stride
  convolution needs ``arm_convolve_1x1_s8_fast_get_buffer_size`` (0 bytes, except with Arm
  Compiler 6 on DSP cores: ``2 * in_c * sizeof(int16_t)``); a 1xN one (input height 1)
  ``arm_convolve_1_x_n_s8_get_buffer_size``; any other ``arm_convolve_s8_get_buffer_size``:
  ``2 * align4(kh * kw * in_c) * sizeof(int16_t)`` without Helium, ``4 * ceil16(kh * kw *
  in_c)`` with Helium (MVE).
* DEPTHWISE_CONV_2D (``kernels/cmsis_nn/depthwise_conv.cc``):
  ``arm_depthwise_conv_wrapper_s8_get_buffer_size`` (``arm_depthwise_conv_get_buffer_sizes_s8.c``):
  0 for a 3x3 kernel with padding <= 1 on DSP cores (the dedicated 3x3 kernel), otherwise
  ``arm_depthwise_conv_s8_opt_get_buffer_size``: ``in_c * kh * kw * sizeof(int16_t)`` (DSP),
  ``4 * CH_IN_BLOCK_MVE (124) * kh * kw`` (MVE), 0 without DSP; with Helium, one input channel
  and more than one output channel, the depthwise convolution runs as a convolution
  (``arm_deptwise_conv_s8_one_in_ch_get_buffer_size_mve``).
* FULLY_CONNECTED (``kernels/cmsis_nn/fully_connected.cc``): ``arm_fully_connected_s8_get_buffer_size``
  (``arm_fully_connected_get_buffer_sizes_s8.c``): 0 on DSP and plain cores; ``out_c *
  sizeof(int32_t)`` with Helium, which TFLM's default ``KERNELS_OPTIMIZED_FOR_SPEED`` build
  keeps as a persistent buffer of precomputed kernel sums instead. An output of rank > 2
  with a depth divisible by 4 runs as a 1x1 convolution and, per-tensor quantized, asks for
  ``out_c * 2 * sizeof(int32_t)`` of per-channel parameters.
* AVERAGE_POOL_2D (``kernels/cmsis_nn/pooling.cc``, ``AveragePrepare``):
  ``arm_avgpool_s8_get_buffer_size`` (``arm_avgpool_get_buffer_sizes_s8.c``): ``in_c *
  sizeof(int32_t)`` on DSP cores, 0 with Helium or without DSP.

Compiler: the figures assume GCC (TFLM's default ``arm-none-eabi-gcc``); where CMSIS-NN
differs for Arm Compiler 6 (``__ARMCC_VERSION``) the difference is stated above. Only int8
kernels request these buffers. Other CMSIS-NN kernels that request scratch
(TRANSPOSE_CONV, SVDF, BATCH_MATMUL, UNIDIRECTIONAL_SEQUENCE_LSTM) are named as not
modelled rather than guessed.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

from components.tflm import model as tflm_model, planner

# Which CMSIS-NN code path a core compiles: Helium (ARM_MATH_MVEI), the DSP extension
# (ARM_MATH_DSP), or plain C. Cores that do not run CMSIS-NN are absent.
VARIANT_BY_CORE = {
    "cortex-m0plus": "plain", "cortex-m3": "plain",
    "cortex-m4": "dsp", "cortex-m4f": "dsp", "cortex-m7": "dsp", "cortex-m33": "dsp",
    "cortex-m55": "mve", "cortex-m85": "mve",
}
VARIANTS = ("plain", "dsp", "mve")
CH_IN_BLOCK_MVE = 124
# CONVERT_DW_CONV_WITH_ONE_INPUT_CH_AND_OUTPUT_CH_ABOVE_THRESHOLD for compilers other than Arm Compiler 6.
_DW_AS_CONV_THRESHOLD = 1
UNMODELLED_SCRATCH_OPS = ("TRANSPOSE_CONV", "SVDF", "BATCH_MATMUL", "UNIDIRECTIONAL_SEQUENCE_LSTM")


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """What CMSIS-NN's buffer-size functions read of a convolution (NHWC; filter as h, w, c)."""

    input: Tuple[int, int, int, int]
    filter: Tuple[int, int, int]
    output: Tuple[int, int, int, int]
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    dilation: Tuple[int, int] = (1, 1)


@dataclasses.dataclass(frozen=True)
class OpScratch:
    """What one operator's CMSIS-NN kernel asks for: a scratch buffer and persistent bytes."""

    index: int
    op: str
    scratch_bytes: int
    persistent_bytes: int
    function: str


def _align4(n: int) -> int:
    return n + (4 - n % 4) % 4


def convolve_s8(geometry: ConvGeometry, variant: str) -> int:
    """``arm_convolve_s8_get_buffer_size`` (im2col columns)."""
    columns = geometry.filter[0] * geometry.filter[1] * geometry.input[3]
    if variant == "mve":
        return 4 * ((columns + 15) // 16) * 16
    return 2 * _align4(columns) * 2


def _convolve_1_x_n_mve(geometry: ConvGeometry) -> int:
    """``arm_convolve_1_x_n_s8_get_buffer_size_mve``."""
    input_x, channels = geometry.input[2], geometry.input[3]
    pad_x, kernel_x, output_x, stride_x = geometry.padding[1], geometry.filter[1], geometry.output[2], geometry.stride[1]
    total_pad = (output_x - 1) * stride_x + kernel_x - input_x
    asym_pad = total_pad % 2
    right = max(1, (pad_x + asym_pad + stride_x - 1) // stride_x) if pad_x + asym_pad != 0 else 0
    left = max(1, (pad_x + stride_x - 1) // stride_x) if pad_x != 0 else 0
    no_pad = max(output_x - (right + left), 0)
    if right + no_pad + left != output_x:
        return convolve_s8(geometry, "mve")
    pad_left = pad_x * channels
    pad_right = right * channels if asym_pad else pad_left
    elements_left = kernel_x * channels
    return max(elements_left + pad_left, elements_left - channels + pad_right)


def convolve_wrapper_s8(geometry: ConvGeometry, variant: str) -> Tuple[int, str]:
    """``arm_convolve_wrapper_s8_get_buffer_size`` for ``variant``; the bytes and the function that decides."""
    (_, in_h, _, in_c), (k_h, k_w, k_c) = geometry.input, geometry.filter
    if geometry.padding == (0, 0) and (k_h, k_w) == (1, 1) and geometry.dilation == (1, 1) and in_c == k_c:
        # arm_convolve_1x1_s8_fast_get_buffer_size: non-zero only with Arm Compiler 6 on DSP cores.
        return 0, "arm_convolve_1x1_s8_fast_get_buffer_size" if geometry.stride == (1, 1) else "arm_convolve_1x1_s8"
    if in_h == 1 and geometry.dilation[1] == 1 and k_h == 1 and (geometry.stride[1] * in_c) % 4 == 0 and in_c == k_c:
        if variant == "mve":
            return _convolve_1_x_n_mve(geometry), "arm_convolve_1_x_n_s8_get_buffer_size_mve"
        return convolve_s8(geometry, variant), "arm_convolve_1_x_n_s8_get_buffer_size"
    return convolve_s8(geometry, variant), "arm_convolve_s8_get_buffer_size"


def depthwise_wrapper_s8(geometry: ConvGeometry, variant: str) -> Tuple[int, str]:
    """``arm_depthwise_conv_wrapper_s8_get_buffer_size`` (filter channels = output channels)."""
    (batch, _, _, in_c), (k_h, k_w, _), out_c = geometry.input, geometry.filter, geometry.output[3]
    if variant == "mve" and in_c == 1 and out_c > _DW_AS_CONV_THRESHOLD:
        as_conv = dataclasses.replace(geometry, filter=(k_h, k_w, 1))
        size = convolve_wrapper_s8(as_conv, "mve")[0] + out_c * k_h * k_w
        return size, "arm_deptwise_conv_s8_one_in_ch_get_buffer_size_mve"
    if in_c == out_c and batch == 1 and geometry.dilation == (1, 1):
        if variant != "mve" and (k_h, k_w) == (3, 3) and max(geometry.padding) <= 1:
            return 0, "arm_depthwise_conv_3x3_s8 (no buffer)"
        if variant == "mve":
            return 4 * CH_IN_BLOCK_MVE * k_w * k_h, "arm_depthwise_conv_s8_opt_get_buffer_size_mve"
        if variant == "dsp":
            return in_c * k_w * k_h * 2, "arm_depthwise_conv_s8_opt_get_buffer_size_dsp"
    return 0, "arm_depthwise_conv_wrapper_s8_get_buffer_size"


def avgpool_s8(channels: int, variant: str) -> int:
    """``arm_avgpool_s8_get_buffer_size``."""
    return channels * 4 if variant == "dsp" else 0


def _padding(in_size: int, filter_size: int, out_size: int, stride: int, dilation: int) -> int:
    """TFLM's ``ComputePaddingWithOffset`` (the leading padding)."""
    effective = (filter_size - 1) * dilation + 1
    return max(0, (out_size - 1) * stride + effective - in_size) // 2


def _geometry(operator: tflm_model.Operator) -> ConvGeometry:
    inp, weights, out = operator.inputs[0].shape, operator.inputs[1].shape, operator.outputs[0].shape
    stride = tuple(operator.options.get("stride", (1, 1)))
    dilation = tuple(operator.options.get("dilation", (1, 1)))
    padding = (_padding(inp[1], weights[1], out[1], stride[0], dilation[0]),
               _padding(inp[2], weights[2], out[2], stride[1], dilation[1]))
    return ConvGeometry(tuple(inp), (weights[1], weights[2], weights[3]), tuple(out), stride, padding, dilation)


def op_scratch(operator: tflm_model.Operator, variant: str) -> Optional[OpScratch]:
    """The CMSIS-NN buffers of one int8 operator, or None when its kernel asks for none."""
    first_input = operator.inputs[0] if operator.inputs else None
    if first_input is None or first_input.dtype != "int8":
        return None
    name = operator.name
    scratch, persistent, function = 0, 0, ""
    if name == "CONV_2D":
        scratch, function = convolve_wrapper_s8(_geometry(operator), variant)
    elif name == "DEPTHWISE_CONV_2D":
        scratch, function = depthwise_wrapper_s8(_geometry(operator), variant)
    elif name == "FULLY_CONNECTED":
        weights, output = operator.inputs[1], operator.outputs[0]
        depth = output.shape[-1]
        if len(output.shape) > 2 and weights.shape[-1] % 4 == 0:
            scratch = 0 if weights.per_channel else depth * 4 * 2
            function = "per-channel parameters of the 1x1-convolution path (fully_connected.cc)"
        elif variant == "mve":
            bias = operator.inputs[2] if len(operator.inputs) > 2 else None
            if weights.constant and (bias is None or bias.constant):
                persistent = depth * 4
                function = "arm_fully_connected_s8_get_buffer_size_mve (kept as persistent kernel sums)"
            else:
                scratch, function = depth * 4, "arm_fully_connected_s8_get_buffer_size_mve"
    elif name == "AVERAGE_POOL_2D":
        scratch, function = avgpool_s8(first_input.shape[-1], variant), "arm_avgpool_s8_get_buffer_size"
    if scratch == 0 and persistent == 0:
        return None
    return OpScratch(operator.index, name, scratch, persistent, function)


@dataclasses.dataclass(frozen=True)
class ScratchArena:
    """The arena a CMSIS-NN build needs: the measured reference-kernel arena plus what its kernels add."""

    variant: str
    arena_bytes: int
    added_bytes: int
    scratch: List[OpScratch]
    method: str
    unmodelled_ops: Tuple[str, ...]

    @property
    def largest_scratch_bytes(self) -> int:
        return max((s.scratch_bytes for s in self.scratch), default=0)


def cmsis_nn_arena(model: bytes, measured_bytes: int, recorded_head: int, variant: str,
                   operators: Optional[Sequence[tflm_model.Operator]] = None) -> ScratchArena:
    """The measured arena plus the buffers CMSIS-NN's ``variant`` kernels request for ``model``.

    The scratch buffers are planned with the tensors by TFLM's own greedy planner
    (``components.tflm.planner``), which is first checked to reproduce the head TFLM
    recorded for the reference kernels; if it does not for this model, every scratch buffer
    is added on top (an upper bound: they are alive one operator at a time).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not '{variant}'")
    operators = list(operators if operators is not None else tflm_model.operators(model))
    requests = [s for s in (op_scratch(o, variant) for o in operators) if s]
    persistent = sum(planner.align(s.persistent_bytes) for s in requests)
    unmodelled = tuple(sorted({o.name for o in operators if o.name in UNMODELLED_SCRATCH_OPS}))
    baseline = planner.planned_head(model)
    if baseline == recorded_head:
        with_scratch = planner.planned_head(model, [(s.index, s.scratch_bytes) for s in requests])
        added = with_scratch - baseline + persistent
        method = ("TFLM's greedy memory planner replayed with the CMSIS-NN scratch buffers (the replay reproduces "
                  f"the {recorded_head}-byte head TFLM recorded for the reference kernels)")
    else:
        added = sum(planner.align(s.scratch_bytes) for s in requests) + persistent
        method = (f"every CMSIS-NN scratch buffer added on top (the planner replay gives {baseline} bytes of head, "
                  f"TFLM recorded {recorded_head}, so the replay is not used)")
    return ScratchArena(variant, measured_bytes + added, added, requests, method, unmodelled)


def arenas_by_variant(model: bytes, measured_bytes: int, recorded_head: int,
                      variants: Sequence[str] = VARIANTS) -> Dict[str, ScratchArena]:
    """``cmsis_nn_arena`` for each variant, sharing one parse of the model."""
    operators = tflm_model.operators(model)
    return {v: cmsis_nn_arena(model, measured_bytes, recorded_head, v, operators) for v in variants}
