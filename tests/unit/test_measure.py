"""MACs and work per op class, read from flatbuffers whose layer shapes are known."""

import os

import pytest

from components.mcu_size_gate import measure
from components.tflm import model as tflm_model

MLPERF = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "components", "mcu_size_gate",
                      "calibration", "mlperf_tiny")


def _mlperf(name: str) -> bytes:
    with open(os.path.join(MLPERF, name), "rb") as f:
        return f.read()


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


def test_work_per_op_class_of_the_tiny_model(tiny_int8_model):
    work = measure.work_by_class(measure.op_work(tflm_model.operators(tiny_int8_model)))
    assert work["conv_2d"] == 8 * 4 * 4 * 9 and work["conv_2d_1x1"] == 0
    assert work["depthwise_conv_2d"] == 8 * 4 * 4 * 9
    assert work["fully_connected"] == 4 * 3
    assert work["pooling"] == 8 * 4 * 4  # global average pooling (MEAN) reads every input element once
    assert work["softmax"] == 3


def _mobilenet_v1_025_96():
    """MACs of MobileNetV1 alpha 0.25 on 96x96x3 (the MLPerf Tiny VWW model), layer by layer."""
    macs = 48 * 48 * 8 * (3 * 3 * 3)  # conv 3x3 stride 2 to 8 channels
    blocks = [(48, 8, 16, 1), (48, 16, 32, 2), (24, 32, 32, 1), (24, 32, 64, 2), (12, 64, 64, 1), (12, 64, 128, 2)] \
        + [(6, 128, 128, 1)] * 5 + [(6, 128, 256, 2), (3, 256, 256, 1)]
    for size, c_in, c_out, stride in blocks:
        out = size // stride
        macs += out * out * c_in * 9 + out * out * c_in * c_out  # depthwise 3x3, then pointwise
    return macs + 256 * 2  # dense to 2 classes


def _resnet8_16():
    """MACs of the MLPerf Tiny IC ResNet-8 (mlcommons/tiny keras_model.py resnet_v1_eembc, 16 filters)."""
    return (32 * 32 * 16 * 27 + 2 * 32 * 32 * 16 * 144            # stem, first stack
            + 16 * 16 * 32 * 144 + 16 * 16 * 32 * 288 + 16 * 16 * 32 * 16   # second stack with 1x1 shortcut
            + 8 * 8 * 64 * 288 + 8 * 8 * 64 * 576 + 8 * 8 * 64 * 32          # third stack with 1x1 shortcut
            + 64 * 10)


@pytest.mark.parametrize("name,by_hand", [
    # keyword_spotting/keras_model.py ds_cnn: 10x4 stride 2 conv to 64, four 3x3 depthwise + 1x1 blocks, dense 12
    ("kws_ref_model.tflite", 25 * 5 * 64 * 40 + 4 * (25 * 5 * 64 * 9 + 25 * 5 * 64 * 64) + 64 * 12),
    ("vww_96_int8.tflite", _mobilenet_v1_025_96()),
    ("pretrainedResnet_quant.tflite", _resnet8_16()),
    # anomaly_detection/keras_model.py: 640 -> 128 x4 -> 8 -> 128 x4 -> 640, dense layers
    ("ad01_int8.tflite", 640 * 128 + 3 * 128 * 128 + 128 * 8 + 8 * 128 + 3 * 128 * 128 + 128 * 640),
])
def test_the_mlperf_tiny_models_have_the_macs_of_their_architecture(name, by_hand):
    assert measure.model_macs(measure.count_macs(_mlperf(name))) == by_hand


def test_op_classes_follow_the_kernel_cmsis_nn_runs():
    resnet = measure.op_work(tflm_model.operators(_mlperf("pretrainedResnet_quant.tflite")))
    conv = [w for w in resnet if w.op == "CONV_2D"]
    # the two 1x1 stride-2 shortcuts run CMSIS-NN's 1x1 kernel; the 3x3 convolutions use im2col
    assert [w.op_class for w in conv].count("conv_2d_1x1") == 2
    assert sum(w.work for w in conv if w.op_class == "conv_2d_1x1") == 16 * 16 * 32 * 16 + 8 * 8 * 64 * 32
    assert {w.op_class for w in resnet if w.op == "ADD"} == {"elementwise"}
    kws = measure.work_by_class(measure.op_work(tflm_model.operators(_mlperf("kws_ref_model.tflite"))))
    assert kws["conv_2d"] == 25 * 5 * 64 * 40 and kws["conv_2d_1x1"] == 4 * 25 * 5 * 64 * 64
    assert kws["pooling"] == 25 * 5 * 64  # one 25x5 average pool over 64 channels
    assert kws["data_movement"] == 64  # the reshape before the dense layer
