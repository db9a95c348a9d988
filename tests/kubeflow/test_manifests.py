"""kubernetes/: every manifest valid for a current Kubernetes, and the kustomization renders."""

import glob
import os
import subprocess

import kubernetes_validate
import pytest
import yaml

from pipeline import config as config_lib
from tests.support import tools

BASE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "kubernetes", "base")
NOT_RESOURCES = {"kustomization.yaml", "pipeline-config.yaml"}
KUBERNETES_VERSION = kubernetes_validate.latest_version()


def _resources(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


@pytest.mark.parametrize("path", [p for p in sorted(glob.glob(os.path.join(BASE, "*.yaml")))
                                  if os.path.basename(p) not in NOT_RESOURCES])
def test_manifest_is_valid_kubernetes(path):
    resources = _resources(path)
    assert resources
    for resource in resources:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module")
def rendered():
    kustomize = tools.require_tool("kustomize", tools.KUSTOMIZE)
    out = subprocess.run([kustomize, "build", BASE], check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_kustomization_renders_valid_resources_in_one_namespace(rendered):
    kinds = {r["kind"] for r in rendered}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service",
            "PersistentVolumeClaim", "CronJob", "NetworkPolicy", "ConfigMap"} <= kinds
    # Applying the base must never overwrite the real signing key and credentials with placeholders:
    # the Secrets are created once by hand (kubernetes/README.md), and only referenced here.
    assert "Secret" not in kinds
    referenced = {v["secret"]["secretName"] for r in rendered if r["kind"] == "Deployment"
                  for v in r["spec"]["template"]["spec"].get("volumes", []) if "secret" in v}
    assert referenced == {"ota-registry-credentials", "telemetry-ingest-token"}
    from tests.kubeflow.test_compile import REPO, documented_secrets

    documented = documented_secrets(os.path.join(REPO, "kubernetes", "README.md"))
    assert "token" in documented["telemetry-ingest-token"]     # the README's command creates what is mounted
    for resource in rendered:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tinyml-tfx"
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "tinyml-tfx"


def test_every_container_requests_resources(rendered):
    for resource in rendered:
        spec = resource.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template", {}).get("spec")
        for container in (pod or {}).get("containers", []):
            assert container["resources"]["requests"], (resource["metadata"]["name"], container["name"])


def test_the_scheduled_config_is_a_valid_kubeflow_config(rendered):
    (config_map,) = [r for r in rendered if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("pipeline-config")]
    cronjob = next(r for r in rendered if r["kind"] == "CronJob")
    volume = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]  # kustomize's hashed name is wired through
    config = config_lib.parse_config(yaml.safe_load(config_map["data"]["kws.yaml"]), "pipeline-config.yaml")
    kubeflow = config.for_kubeflow()
    assert kubeflow.pipeline_root.startswith("gs://") and kubeflow.data_root.startswith("gs://")


def test_the_cronjob_retrains_only_when_the_monitoring_blesses_it(rendered):
    cronjob = next(r for r in rendered if r["kind"] == "CronJob")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    script = " ".join(pod["containers"][0]["args"])
    monitor, compile_ = script.index("tinyml-tfx monitor"), script.index("tinyml-tfx compile")
    assert monitor < compile_ and "--retrain-exit-code 10" in script and '"$status" -ne 10' in script
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims["telemetry"] in {r["metadata"]["name"] for r in rendered if r["kind"] == "PersistentVolumeClaim"}
    (config_map,) = [r for r in rendered if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("pipeline-config")]
    config = config_lib.parse_config(yaml.safe_load(config_map["data"]["kws.yaml"]), "pipeline-config.yaml")
    assert config.monitoring.telemetry_root.startswith(mounts["telemetry"] + "/")


def test_the_telemetry_endpoint_writes_where_the_monitoring_reads(rendered):
    deployment = next(r for r in rendered if r["kind"] == "Deployment" and r["metadata"]["name"] == "telemetry-endpoint")
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[:3] == ["tinyml-tfx", "telemetry", "serve"] and "--token-file" in args
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert not mounts["telemetry"].get("readOnly") and args[args.index("--token-file") + 1].startswith(
        mounts["token"]["mountPath"] + "/")
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    cronjob = next(r for r in rendered if r["kind"] == "CronJob")
    cron_pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    cron_claims = {v["persistentVolumeClaim"]["claimName"] for v in cron_pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims["telemetry"] in cron_claims
    # a ReadWriteOnce volume: the CronJob is scheduled beside the endpoint
    term = cron_pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    service = next(r for r in rendered if r["kind"] == "Service" and r["metadata"]["name"] == "telemetry-endpoint")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
