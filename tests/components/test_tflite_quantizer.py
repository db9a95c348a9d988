"""The TFLiteQuantizer executor on the real artifacts of a tiny pipeline run."""

import json
import os
import subprocess

import pytest
from tfx.types import artifact_utils, standard_artifacts

from components.tflite_quantizer import executor
from components.tflm import TflmError
from components.types import ModelBlessing, TFLiteModel
from pipeline import pipeline as tinyml_pipeline
from tests.helpers import make_artifact
from tests.support.op_resolver import registered_ops


@pytest.fixture(scope="module")
def inputs(tiny_pipeline_runs):
    config, (first, _, _) = tiny_pipeline_runs
    uris = first.artifact_uris
    return config, {
        executor.MODEL_KEY: [make_artifact(standard_artifacts.Model, uris[tinyml_pipeline.TRAINER]["model"])],
        executor.EXAMPLES_KEY: [make_artifact(standard_artifacts.Examples, uris[tinyml_pipeline.TRANSFORM]["transformed_examples"],
                                          split_names=artifact_utils.encode_split_names(["train", "eval", "test"]))],
        executor.TRANSFORM_GRAPH_KEY: [make_artifact(standard_artifacts.TransformGraph,
                                                 uris[tinyml_pipeline.TRANSFORM]["transform_graph"])],
    }


def _run(inputs, tmp_path, **overrides):
    config, input_dict = inputs
    model = make_artifact(TFLiteModel, tmp_path / "model")
    blessing = make_artifact(ModelBlessing, tmp_path / "blessing")
    props = {executor.MODE_KEY: "int8", executor.CALIBRATION_EXAMPLES_KEY: 50,
             executor.MAX_ACCURACY_DROP_KEY: 0.01, executor.LABELS_KEY: json.dumps(list(config.data.labels)),
             executor.SIGNATURE_KEY: "serving_features", executor.SEED_KEY: 0, **overrides}
    executor.Executor().Do(input_dict, {executor.QUANTIZED_MODEL_KEY: [model], executor.BLESSING_KEY: [blessing]}, props)
    return model, blessing


def test_writes_every_device_file_and_records_fidelity(inputs, tmp_path):
    model, blessing = _run(inputs, tmp_path)
    files = set(os.listdir(model.uri))
    assert {"model.tflite", "model_float.tflite", "model_data.cc", "model_data.h", "micro_op_resolver.h",
            "quantization_report.json"} <= files
    report = json.load(open(os.path.join(model.uri, "quantization_report.json")))
    assert report["calibration_examples"] >= 5  # at least one per class
    assert report["model_bytes"] == os.path.getsize(os.path.join(model.uri, "model.tflite")) \
        == model.get_int_custom_property("model_bytes")
    assert model.get_float_custom_property("accuracy_drop") == pytest.approx(
        model.get_float_custom_property("float_accuracy") - model.get_float_custom_property("quantized_accuracy"))
    assert set(report["fidelity"]["per_class"]) <= set(inputs[0].data.labels)
    assert blessing.get_int_custom_property("blessed") == int(
        report["fidelity"]["accuracy_drop"] <= 0.01 and not report["fidelity"]["collapsed"])
    # the op resolver it wrote compiles against TFLM's API and registers exactly the model's ops
    resolver = open(os.path.join(model.uri, "micro_op_resolver.h")).read()
    assert sorted(registered_ops(resolver, tmp_path / "resolver")) == sorted({op["name"] for op in report["ops"]})
    subprocess.run(["g++", "-std=c++17", "-c", "-o", str(tmp_path / "model_data.o"),
                    os.path.join(model.uri, "model_data.cc")], check=True)


def test_a_drop_beyond_the_budget_is_not_blessed_and_says_why(inputs, tmp_path):
    _, blessing = _run(inputs, tmp_path, **{executor.MAX_ACCURACY_DROP_KEY: -1.0})
    assert blessing.get_int_custom_property("blessed") == 0
    assert "accuracy drops" in blessing.get_string_custom_property("reason")
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))


def test_a_model_tflite_micro_cannot_load_fails_naming_the_op(inputs, tmp_path):
    # float16 weights reach the kernels through a float16 DEQUANTIZE, which TFLM lacks
    with pytest.raises(TflmError, match=r"The failing op: DEQUANTIZE"):
        _run(inputs, tmp_path, **{executor.MODE_KEY: "float16"})
