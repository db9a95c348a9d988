"""The quantizer's library on a tiny Keras model: int8 conversion, TFLite Micro inference, C sources."""

import os
import re
import subprocess

import numpy as np
import pytest

from components import model_evaluation
from components.tflite_quantizer import codegen, quantize
from components.tflm import TflmError, model as tflm_model, ops as tflm_ops, runtime as tflm_runtime
from tests.helpers import CLASSES, SHAPE, tiny_model_data as _data
from tests.support.op_resolver import registered_ops

MLPERF_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "components",
                             "mcu_size_gate", "calibration", "mlperf_tiny")


@pytest.fixture(scope="module")
def saved_model(tiny_saved_model):
    return tiny_saved_model


@pytest.fixture(scope="module")
def int8_model(tiny_int8_model):
    return tiny_int8_model


def test_int8_model_has_int8_io_with_quantization_parameters(int8_model):
    info = tflm_model.describe(int8_model)
    (inp,), (out,) = info["inputs"], info["outputs"]
    assert inp["dtype"] == "int8" and out["dtype"] == "int8"
    assert inp["shape"] == [1, *SHAPE] and out["shape"] == [1, 3]
    assert inp["scale"] > 0 and -128 <= inp["zero_point"] <= 127
    # softmax output: TFLite fixes scale 1/256 and zero point -128
    assert out["scale"] == pytest.approx(1 / 256) and out["zero_point"] == -128


def test_op_list_is_the_models_layers_and_nothing_for_dynamic_shapes(int8_model):
    ops = tflm_model.op_names(int8_model)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(ops)
    assert not {"SHAPE", "STRIDED_SLICE", "PACK", "QUANTIZE", "DEQUANTIZE"} & set(ops)
    tflm_ops.check_supported(tflm_model.describe(int8_model)["ops"])


def test_tflm_inference_matches_float_within_quantization_error(saved_model, int8_model):
    x, labels = _data(200, 3)
    float_probs = model_evaluation.predict_saved_model(saved_model, "serving_features", x)
    tflm_probs = tflm_runtime.predict(int8_model, x)
    tflite_probs = model_evaluation.predict_tflite(int8_model, x)
    assert np.abs(tflm_probs - float_probs).max() < 0.1
    result = model_evaluation.fidelity(labels, float_probs, tflm_probs, tflite_probs, CLASSES)
    assert result.float_accuracy > 0.9 and result.accuracy_drop < 0.03 and result.agreement > 0.95
    assert result.tflm_tflite_disagreements <= 2 and not result.collapsed
    assert set(result.per_class) == set(CLASSES)
    matrix = np.array(result.confusion_quantized)
    assert matrix.sum() == len(labels) and np.trace(matrix) / len(labels) == pytest.approx(result.quantized_accuracy)


def test_forgetting_to_quantize_the_input_gives_nonsense(int8_model, saved_model):
    # the classic mistake the fidelity check exists for: float features cast straight to int8
    x, labels = _data(200, 4)
    interpreter = tflm_runtime.interpreter(int8_model)
    wrong = []
    for example in x:
        interpreter.set_input(example[np.newaxis].astype(np.int8), 0)
        interpreter.invoke()
        wrong.append(interpreter.get_output(0).reshape(-1).argmax())
    right = tflm_runtime.predict(int8_model, x).argmax(axis=1)
    assert (right == labels).mean() > (np.array(wrong) == labels).mean() + 0.2


def test_a_collapsed_model_is_flagged():
    labels = np.array([0, 1, 2] * 10)
    one_class = np.tile([1.0, 0.0, 0.0], (30, 1))
    result = model_evaluation.fidelity(labels, one_class, one_class, one_class, CLASSES)
    assert result.collapsed and result.majority_share == 1.0


def test_float16_and_dynamic_range_modes_convert(saved_model):
    for mode in ("float16", "dynamic_range"):
        info = tflm_model.describe(quantize.convert(saved_model, "serving_features", mode))
        assert info["inputs"][0]["dtype"] == "float32"
    with pytest.raises(quantize.QuantizationError, match="Unknown quantization mode"):
        quantize.convert(saved_model, "serving_features", "int4")
    with pytest.raises(quantize.QuantizationError, match="no signature 'nope'"):
        quantize.convert(saved_model, "nope", None)


def test_stratified_calibration_sample_keeps_class_proportions_and_is_seeded():
    labels = np.array([0] * 600 + [1] * 300 + [2] * 100)
    chosen = quantize.stratified_indices(labels, 100, seed=5)
    counts = np.bincount(labels[chosen])
    assert list(counts) == [60, 30, 10]
    assert np.array_equal(chosen, quantize.stratified_indices(labels, 100, seed=5))
    assert not np.array_equal(chosen, quantize.stratified_indices(labels, 100, seed=6))


def test_unsupported_op_is_named(int8_model, monkeypatch):
    with pytest.raises(tflm_ops.UnsupportedOpError, match="CUSTOM:Foo"):
        codegen.micro_op_resolver_h(["CONV_2D", "CUSTOM:Foo"])
    monkeypatch.delitem(tflm_ops.RESOLVER_METHODS, "DEPTHWISE_CONV_2D")
    with pytest.raises(TflmError, match=r"DEPTHWISE_CONV_2D \(version \d\)"):
        tflm_ops.check_supported(tflm_model.describe(int8_model)["ops"])


def test_model_data_cc_compiles_and_matches_the_flatbuffer(int8_model, tmp_path):
    (tmp_path / "model.tflite").write_bytes(int8_model)
    (tmp_path / "model_data.cc").write_text(codegen.model_data_cc(int8_model))
    (tmp_path / "model_data.h").write_text(codegen.model_data_h(len(int8_model)))
    (tmp_path / "check.cc").write_text(r'''
#include <cstdint>
#include <cstdio>
#include <vector>
#include "model_data.h"
int main(int argc, char** argv) {
  FILE* f = std::fopen(argv[1], "rb");
  std::vector<unsigned char> bytes;
  int c;
  while ((c = std::fgetc(f)) != EOF) bytes.push_back(static_cast<unsigned char>(c));
  if (g_model_len != bytes.size() || kGModelLength != bytes.size()) return 1;
  if (reinterpret_cast<std::uintptr_t>(g_model) % 16 != 0) return 2;
  for (unsigned int i = 0; i < g_model_len; ++i) if (g_model[i] != bytes[i]) return 3;
  std::printf("ok %u\n", g_model_len);
  return 0;
}
''')
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-o", str(tmp_path / "check"),
                    str(tmp_path / "check.cc"), str(tmp_path / "model_data.cc")], check=True, cwd=tmp_path)
    result = subprocess.run([str(tmp_path / "check"), str(tmp_path / "model.tflite")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"ok {len(int8_model)}"


@pytest.mark.parametrize("name", ["tiny", "kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8"])
def test_op_resolver_compiles_against_the_tflm_api_and_registers_exactly_the_models_ops(name, int8_model, tmp_path):
    model = int8_model if name == "tiny" else open(os.path.join(MLPERF_MODELS, f"{name}.tflite"), "rb").read()
    ops = tflm_model.op_names(model)
    header = codegen.micro_op_resolver_h(ops)
    assert sorted(registered_ops(header, tmp_path)) == sorted(set(ops))
    assert re.search(rf"kModelOpCount = {len(set(ops))};", header)


def test_every_op_the_table_knows_registers_itself_through_the_real_method_name(tmp_path):
    # One header with every op: a method name that TFLM's resolver lacks fails to compile, and
    # a method that registers another op shows up as a wrong name in the list.
    ops = sorted(tflm_ops.RESOLVER_METHODS)
    assert registered_ops(codegen.micro_op_resolver_h(ops), tmp_path) == ops


def test_a_wrong_or_missing_add_call_is_caught(int8_model, tmp_path, monkeypatch):
    ops = tflm_model.op_names(int8_model)
    monkeypatch.setitem(tflm_ops.RESOLVER_METHODS, "CONV_2D", "AddConv2d")  # not TFLM's name
    with pytest.raises(AssertionError, match="does not compile"):
        registered_ops(codegen.micro_op_resolver_h(ops), tmp_path / "typo")
    monkeypatch.setitem(tflm_ops.RESOLVER_METHODS, "CONV_2D", "AddDepthwiseConv2D")  # registers another op
    with pytest.raises(AssertionError, match="RegisterModelOps failed"):  # DEPTHWISE_CONV_2D twice
        registered_ops(codegen.micro_op_resolver_h(ops), tmp_path / "swap")
    monkeypatch.undo()
    header = codegen.micro_op_resolver_h(ops).replace("  TF_LITE_ENSURE_STATUS(resolver.AddSoftmax());\n", "")
    assert "SOFTMAX" not in registered_ops(header, tmp_path / "missing")
