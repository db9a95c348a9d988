"""The Kubeflow Pipelines v2 build: the compiled spec, parsed strictly, and the image definition.

No cluster runs here (none is reachable); the spec is checked with KFP's own protobuf
and every class it names is imported the way the container entrypoint imports it.
"""

import dataclasses
import json
import os
import re

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.dsl.components.base import base_executor
from tfx.utils import import_utils

from pipeline.ui import cli
from pipeline import config as config_lib
from pipeline import pipeline as tinyml_pipeline
from pipeline.runners import kubeflow as run_kubeflow
from tests.helpers import AUDIO_EXAMPLE_GEN, MOTION_EXAMPLE_GEN

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
def package_path(kubeflow_config, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("kfp") / "pipeline.yaml")
    run_kubeflow.compile_pipeline(kubeflow_config, path)
    return path


@pytest.fixture(scope="module")
def compiled(package_path):
    with open(package_path) as f:
        job, platform = yaml.safe_load_all(f)
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job, spec)  # strict: unknown fields fail
    return job, spec


def test_the_package_is_what_the_kfp_client_uploads(package_path):
    from kfp.client import client as kfp_client
    from kfp.kubernetes import kubernetes_executor_config_pb2

    document = kfp_client._extract_pipeline_yaml(package_path)  # the client's own reader of packages
    assert document.pipeline_spec.schema_version == "2.1.0"
    executors = document.platform_spec.platforms["kubernetes"].deployment_spec.executors
    assert set(executors) == {f"{tinyml_pipeline.PUSHER}_executor"}
    pusher = kubernetes_executor_config_pb2.KubernetesExecutorConfig()
    json_format.ParseDict(json_format.MessageToDict(executors[f"{tinyml_pipeline.PUSHER}_executor"]), pusher)
    env = {m.env_var: (s.secret_name, m.secret_key) for s in pusher.secret_as_env for m in s.key_to_env}
    assert env == {"TINYML_TFX_SIGNING_KEY": ("ota-signing-key", "cosign.key"),
                   "COSIGN_PASSWORD": ("ota-signing-key", "cosign.password"),
                   "TINYML_TFX_REGISTRY_USERNAME": ("ota-registry-credentials", "username"),
                   "TINYML_TFX_REGISTRY_PASSWORD": ("ota-registry-credentials", "password")}
    optional = {m.env_var for s in pusher.secret_as_env if s.optional for m in s.key_to_env}
    assert optional == {"COSIGN_PASSWORD"}  # an unencrypted key needs no passphrase
    documented = documented_secrets(os.path.join(REPO, "kubernetes", "README.md"))
    assert all(key in documented[name] for name, key in env.values())  # the Secrets the documented commands create


def documented_secrets(readme):
    """Secret name -> keys, from the `kubectl create secret generic` commands in ``readme``."""
    with open(readme) as f:
        text = f.read().replace("\\\n", " ")
    secrets = {}
    for command in re.findall(r"kubectl .*create secret generic .*", text):
        name = re.search(r"create secret generic (\S+)", command).group(1)
        secrets[name] = set(re.findall(r"--from-(?:file|literal)=([\w.]+)=", command))
    return secrets


def test_every_component_is_a_task_in_the_dag(compiled):
    _, spec = compiled
    tasks = spec.root.dag.tasks
    for node in (AUDIO_EXAMPLE_GEN, tinyml_pipeline.STATISTICS_GEN, tinyml_pipeline.SCHEMA_GEN,
                 tinyml_pipeline.VALIDATOR, tinyml_pipeline.TRANSFORM, tinyml_pipeline.TRAINER, tinyml_pipeline.EVALUATOR,
                 tinyml_pipeline.QUANTIZER, tinyml_pipeline.SIZE_GATE, tinyml_pipeline.STREAMING_EVALUATOR,
                 tinyml_pipeline.PUSHER):
        assert node in tasks, node
    assert any(name.startswith(tinyml_pipeline.BASELINE_RESOLVER) for name in tasks)


def test_task_order_follows_the_data(compiled):
    _, spec = compiled
    deps = {name: set(task.dependent_tasks) for name, task in spec.root.dag.tasks.items()}
    assert tinyml_pipeline.TRAINER in deps[tinyml_pipeline.QUANTIZER]
    assert tinyml_pipeline.QUANTIZER in deps[tinyml_pipeline.SIZE_GATE]
    assert {tinyml_pipeline.QUANTIZER, tinyml_pipeline.SIZE_GATE} <= deps[tinyml_pipeline.STREAMING_EVALUATOR]
    assert tinyml_pipeline.VALIDATOR in deps[tinyml_pipeline.TRANSFORM]  # no training on data that failed validation
    assert tinyml_pipeline.TRANSFORM in deps[tinyml_pipeline.TRAINER]
    assert tinyml_pipeline.TRAINER in deps[tinyml_pipeline.EVALUATOR]


def test_the_pusher_runs_only_when_every_blessing_is_positive(compiled):
    from pipeline import config as config_lib

    job, spec = compiled
    pusher = spec.root.dag.tasks[tinyml_pipeline.PUSHER]
    assert {tinyml_pipeline.EVALUATOR, tinyml_pipeline.QUANTIZER, tinyml_pipeline.SIZE_GATE,
            tinyml_pipeline.STREAMING_EVALUATOR} <= set(pusher.dependent_tasks)
    condition = pusher.trigger_policy.condition
    assert condition.count("blessed") == 4 and condition.count("&&") == 3, condition
    # every artifact the condition reads is an input of the task (else KFP cannot evaluate it)
    assert set(re.findall(r"inputs\.artifacts\['([^']+)'\]", condition)) == {
        "model_blessing", "quantization_blessing", "device_blessing", "streaming_blessing"} <= set(
        pusher.inputs.artifacts)
    registry = job["root"]["dag"]["tasks"][tinyml_pipeline.PUSHER]["inputs"]["parameters"]["registry"]
    assert registry["runtimeValue"]["constant"] == config_lib.IN_CLUSTER_REGISTRY


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
    custom = {title for title in titles if title.startswith("components.")}
    assert {"components.TFLiteModel", "components.DeviceReport", "components.TestEvaluation",
            "components.StreamingEvaluation"} <= custom
    from components import types
    # the container entrypoint imports every output's type by its name; one that does
    # not resolve fails that task in the pod, not at compile time
    for title in sorted(custom):
        assert import_utils.import_class_by_path(title) is getattr(types, title.split(".")[1]), title
        assert re.fullmatch(r"^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$", title)


def test_pipeline_root_and_data_come_from_the_config(compiled, kubeflow_config):
    job, spec = compiled
    assert spec.default_pipeline_root == "gs://tinyml-runs/kws"
    assert "gs://tinyml-data/speech_commands" in json.dumps(job)
    schema_file = job["root"]["dag"]["tasks"][tinyml_pipeline.SCHEMA_GEN]["inputs"]["parameters"]["schema_file"]
    assert schema_file["runtimeValue"]["constant"] == "/opt/tinyml-tfx/schemas/kws/schema.pbtxt"  # in the image


def test_compile_needs_remote_data_and_a_pipeline_root(tmp_path):
    result = CliRunner().invoke(cli.main, ["compile", "--config", config_lib.DEFAULT_CONFIG,
                                           "--output", str(tmp_path / "p.yaml")])
    assert result.exit_code == cli.EXIT_USAGE and "data.root" in result.output and "Traceback" not in result.output


def test_a_schema_outside_the_image_is_refused(kubeflow_config, tmp_path):
    local_schema = tmp_path / "schema.pbtxt"
    config = dataclasses.replace(kubeflow_config, data=dataclasses.replace(kubeflow_config.data,
                                                                            schema=str(local_schema)))
    with pytest.raises(config_lib.ConfigError, match="data.schema"):
        config.for_kubeflow()


def test_submit_to_an_unreachable_host_is_one_readable_error(package_path):
    result = CliRunner().invoke(cli.main, ["submit", package_path, "--host", "http://127.0.0.1:9"])
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
    assert set(declared) == {"target_device", "max_quantization_drop", "calibration_examples", "train_args",
                             "eval_config", "max_false_accepts_per_hour", "max_false_reject_rate"}
    defaults = {name: parameter["defaultValue"] for name, parameter in declared.items()}
    assert defaults["max_false_accepts_per_hour"] == kubeflow_config.requirements.max_false_accepts_per_hour
    assert defaults["max_false_reject_rate"] == kubeflow_config.requirements.max_false_reject_rate
    assert defaults["target_device"] == kubeflow_config.target_device
    assert defaults["max_quantization_drop"] == pytest.approx(kubeflow_config.requirements.max_quantization_drop)
    assert defaults["calibration_examples"] == kubeflow_config.quantization.calibration_examples
    assert json.loads(defaults["train_args"]) == {"splits": ["train"]}  # no step budget: the config's epochs
    floors = [t["threshold"]["valueThreshold"]["lowerBound"]
              for m in json.loads(defaults["eval_config"])["metricsSpecs"][0]["metrics"]
              for t in m.get("perSliceThresholds", [])]
    assert floors == [kubeflow_config.requirements.min_accuracy]


def test_submit_parameters_are_typed_by_the_spec(package_path):
    path = package_path
    values = run_kubeflow.parse_parameters(str(path), ["target_device=pico", "max_quantization_drop=0.02",
                                                       "calibration_examples=100", "max_false_accepts_per_hour=2",
                                                       "max_false_reject_rate=0.1"])
    assert values == {"target_device": "pico", "max_quantization_drop": 0.02, "calibration_examples": 100,
                      "max_false_accepts_per_hour": 2.0, "max_false_reject_rate": 0.1}
    knobs = run_kubeflow.parse_parameters(str(path), ["min_accuracy=0.93", "train_steps=500"])
    assert json.loads(knobs["train_args"]) == {"splits": ["train"], "numSteps": 500}
    assert '"lowerBound": 0.93' in knobs["eval_config"] and set(knobs) == {"train_args", "eval_config"}
    with pytest.raises(run_kubeflow.SubmitError, match="min_accuracy is a fraction"):
        run_kubeflow.parse_parameters(str(path), ["min_accuracy=93"])
    with pytest.raises(run_kubeflow.SubmitError, match="epochs=3"):
        run_kubeflow.parse_parameters(str(path), ["epochs=3"])
    with pytest.raises(run_kubeflow.SubmitError, match="calibration_examples takes"):
        run_kubeflow.parse_parameters(str(path), ["calibration_examples=many"])


def test_the_motion_task_compiles_with_its_own_example_gen_and_its_curated_schema(tmp_path):
    base = config_lib.load_config(os.path.join(REPO, "pipeline", "configs", "motion.yaml"))
    config = dataclasses.replace(
        base, data=dataclasses.replace(base.data, root="gs://tinyml-data/motion"),
        kubeflow=config_lib.KubeflowConfig(image="registry.example/tinyml-tfx:1.0", pipeline_root="gs://runs"),
    ).for_kubeflow()
    package = run_kubeflow.compile_pipeline(config, str(tmp_path / "motion.yaml"))
    tasks = package["pipeline_spec"]["root"]["dag"]["tasks"]
    assert {MOTION_EXAMPLE_GEN, tinyml_pipeline.SCHEMA_GEN, tinyml_pipeline.PUSHER} <= set(tasks)
    assert AUDIO_EXAMPLE_GEN not in tasks
    schema_file = tasks[tinyml_pipeline.SCHEMA_GEN]["inputs"]["parameters"]["schema_file"]["runtimeValue"]["constant"]
    assert schema_file == "/opt/tinyml-tfx/schemas/motion/schema.pbtxt"  # the curated schema, in the image
    executors = package["pipeline_spec"]["deploymentSpec"]["executors"]
    args = executors[f"{MOTION_EXAMPLE_GEN}_executor"]["container"]["args"]
    cls = import_utils.import_class_by_path(args[args.index("--executor_class_path") + 1])
    assert issubclass(cls, base_executor.BaseExecutor)


def _dependencies(tasks, name):
    return set(tasks[name].get("dependentTasks", []))


def test_the_model_search_compiles_between_transform_and_trainer(kubeflow_config, tmp_path):
    config = dataclasses.replace(kubeflow_config, search=config_lib.SearchConfig(enabled=True, max_epochs=3))
    package = run_kubeflow.compile_pipeline(config, str(tmp_path / "search.yaml"))
    tasks = package["pipeline_spec"]["root"]["dag"]["tasks"]
    assert tinyml_pipeline.TRANSFORM in _dependencies(tasks, tinyml_pipeline.MODEL_SEARCH)
    assert tinyml_pipeline.MODEL_SEARCH in _dependencies(tasks, tinyml_pipeline.TRAINER)
    hyperparameters = tasks[tinyml_pipeline.TRAINER]["inputs"]["artifacts"]["hyperparameters"]["taskOutputArtifact"]
    assert hyperparameters == {"producerTask": tinyml_pipeline.MODEL_SEARCH, "outputArtifactKey": "best_hyperparameters"}
    executors = package["pipeline_spec"]["deploymentSpec"]["executors"]
    args = executors[f"{tinyml_pipeline.MODEL_SEARCH}_executor"]["container"]["args"]
    cls = import_utils.import_class_by_path(args[args.index("--executor_class_path") + 1])
    assert issubclass(cls, base_executor.BaseExecutor) and cls.__module__ == "components.model_search.executor"


def test_search_off_imports_the_hyperparameters_file_from_the_image(tmp_path):
    base = config_lib.load_config(config_lib.DEFAULT_CONFIG)  # its training.hyperparameters: the repository's file
    assert base.training.hyperparameters == os.path.join(REPO, "pipeline", "tasks", "kws", "hyperparameters")
    config = dataclasses.replace(
        base, data=dataclasses.replace(base.data, root="gs://tinyml-data/speech_commands"),
        kubeflow=config_lib.KubeflowConfig(image="registry.example/tinyml-tfx:1.0", pipeline_root="gs://runs"),
    ).for_kubeflow()
    package = run_kubeflow.compile_pipeline(config, str(tmp_path / "imported.yaml"))
    tasks = package["pipeline_spec"]["root"]["dag"]["tasks"]
    assert tinyml_pipeline.MODEL_SEARCH not in tasks
    importer = package["pipeline_spec"]["deploymentSpec"]["executors"][
        f"{tinyml_pipeline.HYPERPARAMETERS_IMPORTER}_executor"]["importer"]
    assert importer["artifactUri"]["constant"] == "/opt/tinyml-tfx/pipeline/tasks/kws/hyperparameters"
    assert tinyml_pipeline.HYPERPARAMETERS_IMPORTER in _dependencies(tasks, tinyml_pipeline.TRAINER)
