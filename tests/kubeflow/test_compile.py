"""The Kubeflow Pipelines v2 build: the compiled spec, parsed strictly, and the image definition.

No cluster runs here (none is reachable); the spec is checked with KFP's own protobuf
and every class it names is imported the way the container entrypoint imports it.
"""

import dataclasses
import json
import os
import re

import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.dsl.components.base import base_executor
from tfx.utils import import_utils

from pipeline import cli
from pipeline import config as config_lib
from pipeline import pipeline as kws_pipeline
from pipeline import run_kubeflow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def kubeflow_config():
    base = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    return dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, root="gs://tinyml-data/speech_commands"),
        kubeflow=config_lib.KubeflowConfig(image="registry.example/tinyml-tfx:1.0", pipeline_root="gs://tinyml-runs"),
    ).for_kubeflow()


@pytest.fixture(scope="module")
def compiled(kubeflow_config, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("kfp") / "pipeline.json")
    job = run_kubeflow.compile_pipeline(kubeflow_config, path)
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job["pipelineSpec"], spec)  # strict: unknown fields fail
    return job, spec


def test_every_component_is_a_task_in_the_dag(compiled):
    _, spec = compiled
    tasks = spec.root.dag.tasks
    for node in (kws_pipeline.EXAMPLE_GEN, kws_pipeline.STATISTICS_GEN, kws_pipeline.SCHEMA_GEN,
                 kws_pipeline.VALIDATOR, kws_pipeline.TRANSFORM, kws_pipeline.TRAINER, kws_pipeline.EVALUATOR,
                 kws_pipeline.QUANTIZER, kws_pipeline.SIZE_GATE, kws_pipeline.PUSHER):
        assert node in tasks, node
    assert any(name.startswith(kws_pipeline.BASELINE_RESOLVER) for name in tasks)


def test_task_order_follows_the_data(compiled):
    _, spec = compiled
    deps = {name: set(task.dependent_tasks) for name, task in spec.root.dag.tasks.items()}
    assert kws_pipeline.TRAINER in deps[kws_pipeline.QUANTIZER]
    assert kws_pipeline.QUANTIZER in deps[kws_pipeline.SIZE_GATE]
    assert kws_pipeline.VALIDATOR in deps[kws_pipeline.TRANSFORM]  # no training on data that failed validation
    assert kws_pipeline.TRANSFORM in deps[kws_pipeline.TRAINER]
    assert kws_pipeline.TRAINER in deps[kws_pipeline.EVALUATOR]


def test_the_pusher_runs_only_when_every_blessing_is_positive(compiled):
    from pipeline import config as config_lib

    job, spec = compiled
    pusher = spec.root.dag.tasks[kws_pipeline.PUSHER]
    assert {kws_pipeline.EVALUATOR, kws_pipeline.QUANTIZER, kws_pipeline.SIZE_GATE} <= set(pusher.dependent_tasks)
    condition = pusher.trigger_policy.condition
    assert condition.count("blessed") == 3 and condition.count("&&") == 2, condition
    registry = job["pipelineSpec"]["root"]["dag"]["tasks"][kws_pipeline.PUSHER]["inputs"]["parameters"]["registry"]
    assert registry["runtimeValue"]["constantValue"]["stringValue"] == config_lib.IN_CLUSTER_REGISTRY


def test_executors_use_the_image_and_the_tfx_entrypoint_and_resolve(compiled):
    _, spec = compiled
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    containers = [e["container"] for e in executors.values() if "container" in e]
    assert containers and all(c["image"] == "registry.example/tinyml-tfx:1.0" for c in containers)
    for container in containers:
        args = container["args"]
        if "--executor_class_path" in args:
            # what the container entrypoint will import in the pod
            cls = import_utils.import_class_by_path(args[args.index("--executor_class_path") + 1])
            assert issubclass(cls, base_executor.BaseExecutor), cls
    assert any("kubeflow_v2_run_executor" in " ".join(c["command"]) for c in containers)


def test_custom_artifact_type_follows_kfp_naming_and_resolves(compiled):
    _, spec = compiled
    titles = set()
    for component in spec.components.values():
        for artifact in component.output_definitions.artifacts.values():
            titles.add(artifact.artifact_type.schema_title or
                       re.search(r"title: (\S+)", artifact.artifact_type.instance_schema).group(1))
    assert {"components.TFLiteModel", "components.DeviceReport"} <= titles
    from components.types import TFLiteModel
    assert import_utils.import_class_by_path("components.TFLiteModel") is TFLiteModel
    assert re.fullmatch(r"^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$", TFLiteModel.TYPE_NAME)


def test_pipeline_root_and_data_come_from_the_config(compiled, kubeflow_config):
    job, spec = compiled
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://tinyml-runs/kws"
    assert "gs://tinyml-data/speech_commands" in json.dumps(job)


def test_compile_needs_remote_data_and_a_pipeline_root(tmp_path):
    result = CliRunner().invoke(cli.main, ["compile", "--config", config_lib.DEFAULT_CONFIG,
                                           "--output", str(tmp_path / "p.json")])
    assert result.exit_code == cli.EXIT_USAGE and "data.root" in result.output and "Traceback" not in result.output


def test_submit_to_an_unreachable_host_is_one_readable_error(tmp_path):
    spec = tmp_path / "p.json"
    spec.write_text("{}")
    result = CliRunner().invoke(cli.main, ["submit", str(spec), "--host", "http://127.0.0.1:9"])
    assert result.exit_code == cli.EXIT_FAILED
    assert "http://127.0.0.1:9" in result.output and "Traceback" not in result.output


def test_dockerfile_installs_exactly_the_lock_file():
    dockerfile = open(os.path.join(REPO, "kubernetes", "Dockerfile")).read()
    assert re.search(r"^FROM python:3\.13-slim-trixie$", dockerfile, re.M)  # glibc >= 2.39 for TFX 1.21
    assert "COPY requirements.lock" in dockerfile and "pip install -r requirements.lock" in dockerfile
    assert re.search(r"^USER 10001$", dockerfile, re.M)
    lock = open(os.path.join(REPO, "requirements.lock")).read()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", lock, re.M))
    assert pins["tfx"] == "1.21.0" and pins["kfp"].startswith("2.16") and pins["kfp-pipeline-spec"].startswith("2.16")
    # the container entrypoint the spec names imports here, next to the project's components
    import_utils.import_func_from_module("tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor", "main")


def test_per_run_knobs_are_run_parameters_with_the_configs_defaults(compiled, kubeflow_config):
    job, spec = compiled
    declared = json_format.MessageToDict(spec.root.input_definitions)["parameters"]
    assert set(declared) == {"target_device", "max_quantization_drop", "calibration_examples"}
    defaults = job["runtimeConfig"]["parameters"]
    assert defaults["target_device"] == {"stringValue": kubeflow_config.target_device}
    assert defaults["max_quantization_drop"]["doubleValue"] == pytest.approx(
        kubeflow_config.requirements.max_quantization_drop)
    assert int(defaults["calibration_examples"]["intValue"]) == kubeflow_config.quantization.calibration_examples


def test_submit_parameters_are_typed_by_the_spec(compiled, tmp_path):
    job, _ = compiled
    path = tmp_path / "p.json"
    path.write_text(json.dumps(job))
    values = run_kubeflow.parse_parameters(str(path), ["target_device=pico", "max_quantization_drop=0.02",
                                                       "calibration_examples=100"])
    assert values == {"target_device": "pico", "max_quantization_drop": 0.02, "calibration_examples": 100}
    with pytest.raises(run_kubeflow.SubmitError, match="epochs=3"):
        run_kubeflow.parse_parameters(str(path), ["epochs=3"])
    with pytest.raises(run_kubeflow.SubmitError, match="calibration_examples takes"):
        run_kubeflow.parse_parameters(str(path), ["calibration_examples=many"])
