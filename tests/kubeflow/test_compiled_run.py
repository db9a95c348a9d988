"""The compiled Kubeflow package really runs: every task through TFX's v2 container entrypoint.

pipeline/kfp_launcher.py plays KFP's launcher (no cluster is reachable here): it runs each
task's container command from the package as a subprocess with the ExecutorInput KFP would
build, hands the OtaPusher the Secrets the platform spec names, and evaluates the trigger
condition. The run ends with a push to the real reference registry.
"""

import dataclasses
import glob
import json
import os
import re

import pytest

from components.ota import channels, http_registry, publish, releases, signing
from pipeline import config as config_lib
from pipeline.runners import kfp_launcher
from pipeline.runners import kubeflow as run_kubeflow
from pipeline import pipeline as tinyml_pipeline
from pipeline.tasks.common.training import FIT_CPU_SECONDS, FIT_SECONDS, HISTORY_FILE, OPTIMIZER_STEPS
from tests.helpers import AUDIO_EXAMPLE_GEN, reference_registry, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USER, PASSWORD = "kfp-pusher", "kfp-pass"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with reference_registry(str(tmp_path_factory.mktemp("kfp-registry")), USER, PASSWORD) as url:
        yield url


@pytest.fixture(scope="module")
def compiled_run(tiny_dataset, registry, tmp_path_factory):
    work = tmp_path_factory.mktemp("kfp-run")
    local = tiny_config(str(work / "local"), tiny_dataset)
    config = dataclasses.replace(
        local,
        data=dataclasses.replace(local.data, schema=config_lib.DEFAULT_SCHEMA),
        kubeflow=config_lib.KubeflowConfig(image="tinyml-tfx:test", pipeline_root=str(work / "root"),
                                           project_dir=REPO),
        release=config_lib.ReleaseConfig(registry=registry),
    ).for_kubeflow()
    # The tiny dataset has its own labels and schema; the "pods" here share this machine's disk.
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, schema=local.data.schema))
    package = str(work / "pipeline.yaml")
    run_kubeflow.compile_pipeline(config, package)

    private, public = signing.generate_key_pair(b"kfp passphrase")  # encrypted, as `tinyml-tfx keys generate` makes it
    secrets = {run_kubeflow.SIGNING_KEY_SECRET: {run_kubeflow.SIGNING_KEY_SECRET_KEY: private.decode(),
                                                 run_kubeflow.SIGNING_KEY_PASSWORD_KEY: "kfp passphrase"},
               run_kubeflow.REGISTRY_CREDENTIALS_SECRET: {"username": USER, "password": PASSWORD}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYML_TFX_")}
    # The per-run knobs as a user gives them to `tinyml-tfx submit --param`.
    parameters = run_kubeflow.parse_parameters(package, ["train_steps=100", "min_accuracy=0.25",
                                                         "max_false_accepts_per_hour=900"])
    runs = kfp_launcher.run_package(package, str(work / "root"), parameters=parameters, secrets=secrets, env=env)
    return config, package, runs, public


def test_every_task_runs_through_the_container_entrypoint(compiled_run):
    _, package, runs, _ = compiled_run
    spec, _ = kfp_launcher.load_package(package)
    for name, run in runs.items():
        expected = "resolved" if name.startswith(tinyml_pipeline.BASELINE_RESOLVER) else "succeeded"
        assert run.state == expected, (name, run.state)
    assert runs[tinyml_pipeline.PUSHER].condition.count("blessed") == 4  # evaluated, and true
    assert set(runs) == set(spec["root"]["dag"]["tasks"])


def test_the_run_knobs_reach_the_trainer_and_the_evaluator(compiled_run):
    config, _, runs, _ = compiled_run
    epochs = config.training.epochs
    trainer_log = open(os.path.join(os.path.dirname(runs[tinyml_pipeline.TRAINER].outputs["model"][0]["uri"]),
                                    "log.txt")).read()
    assert re.search(rf"Training epoch {epochs}/{epochs}: .*", trainer_log)
    with open(os.path.join(runs[tinyml_pipeline.TRAINER].outputs["model_run"][0]["uri"], HISTORY_FILE)) as f:
        history = json.load(f)
    # The budget of 100 steps, not the full epochs the config asks for, is what training took.
    assert history[OPTIMIZER_STEPS] == 100 and len(history["loss"]) == epochs
    assert history[FIT_SECONDS] > 0 and history[FIT_CPU_SECONDS] > 0   # what bench-scale reports as fit cores
    evaluator_log = open(os.path.join(os.path.dirname(runs[tinyml_pipeline.EVALUATOR].outputs["blessing"][0]["uri"]),
                                      "log.txt")).read()
    assert re.search(r"lowerBound.{1,4}0\.25", evaluator_log)
    streaming = runs[tinyml_pipeline.STREAMING_EVALUATOR].outputs["evaluation"][0]["uri"]
    with open(os.path.join(streaming, "streaming_report.json")) as f:
        assert json.load(f)["requirements"]["max_false_accepts_per_hour"] == 900


def test_it_produces_the_same_artifacts_as_the_local_runner(compiled_run, tiny_pipeline_runs):
    _, _, runs, _ = compiled_run
    _, (local_first, _, _) = tiny_pipeline_runs
    for node, outputs in local_first.artifact_uris.items():
        if node.startswith(tinyml_pipeline.BASELINE_RESOLVER):
            continue
        assert set(runs[node].outputs) == set(outputs), node
        for key, artifacts in runs[node].outputs.items():
            assert len(artifacts) == 1 and os.path.isdir(artifacts[0]["uri"]), (node, key)
            # written where the local run wrote something (Transform's analyzer cache may be empty in both)
            assert bool(os.listdir(artifacts[0]["uri"])) == bool(os.listdir(outputs[key])), (node, key)

    def splits(uri):
        return sorted(os.path.basename(d) for d in glob.glob(os.path.join(uri, "Split-*")))

    examples = runs[AUDIO_EXAMPLE_GEN].outputs["examples"][0]
    assert splits(examples["uri"]) == splits(local_first.artifact_uris[AUDIO_EXAMPLE_GEN]["examples"])
    for node, key, name in ((tinyml_pipeline.SIZE_GATE, "report", "device_report.json"),):
        kfp_report = json.load(open(os.path.join(runs[node].outputs[key][0]["uri"], name)))
        local_report = json.load(open(os.path.join(local_first.artifact_uris[node][key], name)))
        assert [op["name"] for op in kfp_report["ops"]] == [op["name"] for op in local_report["ops"]]
        assert kfp_report["arena"]["smallest_bytes"] == local_report["arena"]["smallest_bytes"]


def test_it_ends_with_a_signed_push_to_the_registry_with_the_secrets_from_the_platform_spec(compiled_run,
                                                                                         registry):
    config, _, runs, public = compiled_run
    pushed = runs[tinyml_pipeline.PUSHER].outputs["pushed_model"][0]
    assert pushed["metadata"]["pushed"] == 1
    store = http_registry.HttpRegistry(registry, config.repository, USER, PASSWORD)
    version = pushed["metadata"]["pushed_version"]
    files = releases.pull_release(store, version, config.repository, public)  # verifies the signature
    quantized = runs[tinyml_pipeline.QUANTIZER].outputs["quantized_model"][0]["uri"]
    assert files["model.tflite"] == open(os.path.join(quantized, "model.tflite"), "rb").read()
    assert channels.current_version(store, config.target_device, "canary") == version
    annotations = store.get_manifest(store.resolve(version)["digest"])["annotations"]
    assert annotations[releases.PIPELINE_ANNOTATION] == config.pipeline_name
    assert config.target_device in publish.targets_of(annotations)


def test_a_missing_secret_stops_the_pusher_with_the_secret_named(compiled_run, tmp_path):
    _, package, _, _ = compiled_run
    spec, platform = kfp_launcher.load_package(package)
    executor = spec["components"][tinyml_pipeline.PUSHER]["executorLabel"]
    config = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor]
    with pytest.raises(kfp_launcher.LaunchError, match=run_kubeflow.SIGNING_KEY_SECRET):
        kfp_launcher.secret_env(config, {}, tinyml_pipeline.PUSHER)
