"""kubernetes/overlays/: the Beam stages on a Flink session cluster or on Dataflow, validated, not run.

No cluster, Flink, job server or Dataflow is reachable here. What is checked: every
rendered Kubernetes object against the Kubernetes schemas (kubernetes-validate, strict);
the FlinkDeployment, which kubernetes-validate has no schema for, against the
operator's CRD fields transcribed in kubernetes/overlays/flink/schemas/ (strict) and its
pod template against the Kubernetes Pod schema; that each overlay's config is the base's
but for beam_args, that Beam parses those arguments, that they point at what the overlay
deploys, and that the compiled Kubeflow package hands them to every Beam component.
"""

import dataclasses
import json
import os
import shutil
import subprocess

import apache_beam
import jsonschema
import kubernetes_validate
import pytest
import yaml
from apache_beam.options.pipeline_options import (FlinkRunnerOptions, GoogleCloudOptions, PipelineOptions,
                                                  PortableOptions, SetupOptions, StandardOptions,
                                                  WorkerOptions)

from pipeline import config as config_lib
from pipeline import pipeline as tinyml_pipeline
from pipeline.runners import kubeflow as run_kubeflow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVERLAYS = os.path.join(REPO, "kubernetes", "overlays")
BASE_CONFIG = os.path.join(REPO, "kubernetes", "base", "pipeline-config.yaml")
FLINK_SCHEMA = os.path.join(OVERLAYS, "flink", "schemas", "flinkdeployment-v1beta1.schema.json")
KUBERNETES_VERSION = kubernetes_validate.latest_version()
BEAM_COMPONENTS = ("AudioExampleGen", "StatisticsGen", "Transform", "Evaluator")


def _render(overlay):
    kustomize = shutil.which("kustomize")
    assert kustomize, "kustomize is missing: scripts/devenv.sh installs it in the Debian 13 root"
    out = subprocess.run([kustomize, "build", os.path.join(OVERLAYS, overlay)], check=True, capture_output=True,
                         text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def flink():
    return _render("flink")


@pytest.fixture(scope="module")
def dataflow():
    return _render("dataflow")


def _one(resources, kind, name_prefix=""):
    (found,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"].startswith(name_prefix)]
    return found


def _config(resources, overlay):
    config_map = _one(resources, "ConfigMap", "pipeline-config")
    return config_lib.parse_config(yaml.safe_load(config_map["data"]["kws.yaml"]), f"{overlay}/pipeline-config.yaml")


def _flink_schema():
    with open(FLINK_SCHEMA) as f:
        return json.load(f)


def _pod_templates(flink_deployment):
    spec = flink_deployment["spec"]
    templates = [spec.get("podTemplate")] + [spec.get(role, {}).get("podTemplate") for role in
                                             ("jobManager", "taskManager")]
    return [t for t in templates if t]


def _as_pod(template, name):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **template.get("metadata", {})},
            "spec": template["spec"]}


@pytest.mark.parametrize("overlay", ["flink", "dataflow"])
def test_every_kubernetes_object_is_valid_and_in_the_namespace(overlay, flink, dataflow):
    resources = {"flink": flink, "dataflow": dataflow}[overlay]
    for resource in resources:
        if resource["kind"] == "Namespace":
            continue
        assert resource["metadata"]["namespace"] == "tinyml-tfx", resource["metadata"]["name"]
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tinyml-tfx"
        if resource["apiVersion"].startswith("flink.apache.org/"):
            continue   # not a Kubernetes kind: the next test
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_flink_deployment_matches_the_operators_crd_and_its_pods_the_pod_schema(flink):
    deployment = _one(flink, "FlinkDeployment")
    jsonschema.validate(deployment, _flink_schema(), cls=jsonschema.Draft202012Validator)
    templates = _pod_templates(deployment)
    assert templates
    for template in templates:
        kubernetes_validate.validate(_as_pod(template, "template"), KUBERNETES_VERSION, strict=True)


def test_the_flink_checks_catch_mistakes(flink):
    deployment = _one(flink, "FlinkDeployment")
    validator = jsonschema.Draft202012Validator(_flink_schema())
    typo = json.loads(json.dumps(deployment))
    typo["spec"]["taskManagr"] = typo["spec"].pop("taskManager")
    old = json.loads(json.dumps(deployment))
    old["spec"]["flinkVersion"] = "v1_12"
    cpu = json.loads(json.dumps(deployment))
    cpu["spec"]["jobManager"]["resource"]["cpu"] = "one"
    for broken in (typo, old, cpu):
        assert list(validator.iter_errors(broken))
    pod = json.loads(json.dumps(_as_pod(_pod_templates(deployment)[0], "template")))
    pod["spec"]["containers"][1]["ports"][0]["containerPort"] = "fifty thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["flink", "dataflow"])
def test_an_overlays_config_is_the_bases_but_for_beam_args(overlay, flink, dataflow):
    config = _config({"flink": flink, "dataflow": dataflow}[overlay], overlay)
    with open(BASE_CONFIG) as f:
        base = config_lib.parse_config(yaml.safe_load(f), "base/pipeline-config.yaml")
    assert config.beam_args != base.beam_args
    strip = dict(beam_args=(), source="")
    assert dataclasses.replace(config, **strip) == dataclasses.replace(base, **strip)
    kubeflow = config.for_kubeflow()
    assert kubeflow.pipeline_root.startswith("gs://") and kubeflow.data_root.startswith("gs://")


def test_the_flink_beam_args_point_at_what_the_overlay_deploys(flink):
    config = _config(flink, "flink")
    options = PipelineOptions(list(config.beam_args))
    portable = options.view_as(PortableOptions)
    assert options.view_as(StandardOptions).runner == "PortableRunner"
    service = _one(flink, "Service", "beam-flink-job-server")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert portable.job_endpoint == f"{host}:{ports['job']}"
    assert portable.artifact_endpoint == f"{host}:{ports['artifact']}"
    # The SDK worker pool beside every TaskManager listens where the pipeline says its workers are.
    deployment = _one(flink, "FlinkDeployment")
    containers = deployment["spec"]["taskManager"]["podTemplate"]["spec"]["containers"]
    (pool,) = [c for c in containers if c["name"] == "beam-worker-pool"]
    assert portable.environment_type == "EXTERNAL"
    assert portable.environment_config == f"localhost:{pool['ports'][0]['containerPort']}"
    assert f"--service_port={pool['ports'][0]['containerPort']}" in pool["args"]
    # ... and runs the pipeline image, as the Kubeflow tasks do (kustomize's image transformer reached it).
    cronjob = _one(flink, "CronJob")
    assert pool["image"] == cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert pool["image"] == config.kubeflow.image
    # The job server talks to the operator's REST service of this FlinkDeployment, in the same Flink version,
    # built for the Beam version the pipeline image installs.
    job_server = _one(flink, "Deployment", "beam-flink-job-server")["spec"]["template"]["spec"]["containers"][0]
    assert f"--flink-master={deployment['metadata']['name']}-rest:8081" in job_server["args"]
    flink_version = deployment["spec"]["flinkVersion"].lstrip("v").replace("_", ".")
    assert job_server["image"] == f"apache/beam_flink{flink_version}_job_server:{apache_beam.__version__}"
    assert flink_version in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    assert deployment["spec"]["image"] == f"flink:{flink_version}"
    assert options.view_as(FlinkRunnerOptions).parallelism == 4


def test_the_dataflow_beam_args_run_the_pipeline_image_as_the_worker_account(dataflow):
    config = _config(dataflow, "dataflow")
    options = PipelineOptions(list(config.beam_args))
    gcp = options.view_as(GoogleCloudOptions)
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert gcp.project and gcp.region
    assert gcp.temp_location.startswith("gs://") and gcp.staging_location.startswith("gs://")
    assert gcp.service_account_email.endswith(".iam.gserviceaccount.com")
    assert options.view_as(WorkerOptions).sdk_container_image == config.kubeflow.image
    assert options.view_as(SetupOptions).requirements_file is None   # everything is in the image
    account = _one(dataflow, "ServiceAccount", "pipeline-runner")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    cronjob = _one(dataflow, "CronJob")
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == "pipeline-runner"


@pytest.mark.parametrize("overlay", ["flink", "dataflow"])
def test_the_compiled_package_hands_the_beam_args_to_every_beam_component(overlay, flink, dataflow, tmp_path):
    config = _config({"flink": flink, "dataflow": dataflow}[overlay], overlay).for_kubeflow()
    package = str(tmp_path / "pipeline.yaml")
    run_kubeflow.compile_pipeline(config, package)
    with open(package) as f:
        job, _ = yaml.safe_load_all(f)
    executors = job["deploymentSpec"]["executors"]
    # the overlay's args, and the image as the workers' environment where they name none (Flink's
    # worker pools run it; without the flag TFX would stage a source package of itself)
    expected = tinyml_pipeline.beam_pipeline_args(config)
    assert expected[:len(config.beam_args)] == list(config.beam_args)
    assert any(arg.startswith("--sdk_container_image=") for arg in expected)
    for component in BEAM_COMPONENTS:
        args = executors[f"{component}_executor"]["container"]["args"]
        assert args[-len(expected):] == expected, component
