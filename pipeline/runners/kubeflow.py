"""The same pipeline for Kubeflow Pipelines v2: compile to a pipeline spec, submit a run.

TFX 1.21 declares ``kfp`` only for Python < 3.12 and ``tfx.v1.orchestration.experimental``
swallows the failed import of ``KubeflowV2DagRunner``; requirements.lock pins ``kfp``,
``kfp-pipeline-spec`` and ``kfp-kubernetes`` 2.16, and the runner is imported from its own module.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Optional, Sequence

import yaml

from pipeline import pipeline as tinyml_pipeline
from pipeline.config import PipelineConfig


class SubmitError(RuntimeError):
    """The Kubeflow Pipelines API could not be reached or refused the run."""


# The Secrets kubernetes/README.md creates (`kubectl create secret`; the base kustomization holds
# none, so applying it never overwrites them), handed to the OtaPusher's pod as the environment
# variables components/ota/publish.py reads. The key's passphrase is optional (an unencrypted key).
SIGNING_KEY_SECRET, SIGNING_KEY_SECRET_KEY = "ota-signing-key", "cosign.key"
SIGNING_KEY_PASSWORD_KEY = "cosign.password"
REGISTRY_CREDENTIALS_SECRET = "ota-registry-credentials"
SERVICE_ACCOUNT = "pipeline-runner"  # kubernetes/base/rbac.yaml


def pusher_secret_env() -> Dict[str, Any]:
    """The Kubernetes executor config (kfp-kubernetes ``secretAsEnv``) of the OtaPusher's pod."""
    from components.ota import publish

    return {"secretAsEnv": [
        {"secretName": SIGNING_KEY_SECRET,
         "keyToEnv": [{"secretKey": SIGNING_KEY_SECRET_KEY, "envVar": publish.SIGNING_KEY_ENV}]},
        {"secretName": SIGNING_KEY_SECRET, "optional": True,
         "keyToEnv": [{"secretKey": SIGNING_KEY_PASSWORD_KEY, "envVar": publish.PASSPHRASE_ENV}]},
        {"secretName": REGISTRY_CREDENTIALS_SECRET,
         "keyToEnv": [{"secretKey": "username", "envVar": publish.USERNAME_ENV},
                      {"secretKey": "password", "envVar": publish.PASSWORD_ENV}]},
    ]}


def compile_pipeline(config: PipelineConfig, output_file: str) -> Dict[str, Any]:
    """Compiles ``config``'s pipeline into a KFP package at ``output_file`` (YAML).

    The package is what ``kfp`` and the Kubeflow Pipelines UI upload: the pipeline spec
    (schema 2.1, from TFX's ``KubeflowV2DagRunner``, with the run parameters' defaults and
    the pipeline root filled in) and the Kubernetes platform spec that hands the signing key
    and registry credentials Secrets to the OtaPusher's pod.

    Args:
        config: a config prepared with ``for_kubeflow()``.
        output_file: where the package goes (``.yaml``).

    Returns:
        ``{"pipeline_spec": ..., "platform_spec": ...}``, as written.
    """
    defaults = {name: parameter.default for name, parameter in tinyml_pipeline.runtime_parameters(config).items()}
    spec = pipeline_spec(tinyml_pipeline.create_pipeline(config), config.pipeline_name, config.kubeflow.image,
                         defaults)
    pusher_executor = spec["components"][tinyml_pipeline.PUSHER]["executorLabel"]
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {pusher_executor: pusher_secret_env()}}}}}
    return write_package(spec, platform, output_file)


def pipeline_spec(tfx_pipeline: Any, display_name: str, image: str,
                  parameter_values: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A TFX pipeline as a KFP pipeline spec (schema 2.1, TFX's ``KubeflowV2DagRunner``), with the run
    parameters' defaults and the pipeline root filled in."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    with tempfile.TemporaryDirectory() as scratch:
        runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
            config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
                display_name=display_name, default_image=image,
                use_pipeline_spec_2_1=True),  # the schema KFP 2.x backends run
            output_dir=scratch, output_filename="pipeline_job.json")
        runner.run(tfx_pipeline, parameter_values=parameter_values or {}, write_out=True)
        with open(os.path.join(scratch, "pipeline_job.json"), encoding="utf-8") as f:
            job = json.load(f)
    spec = job["pipelineSpec"]
    spec["defaultPipelineRoot"] = job["runtimeConfig"]["gcsOutputDirectory"]
    for name, value in job["runtimeConfig"].get("parameterValues", {}).items():
        parameter = spec["root"]["inputDefinitions"]["parameters"][name]
        parameter["defaultValue"] = value
        parameter["isOptional"] = True
    return spec


def write_package(spec: Dict[str, Any], platform: Dict[str, Any], output_file: str) -> Dict[str, Any]:
    """Writes a KFP package (the pipeline spec, then the platform spec) to ``output_file``."""
    output_dir = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(output_dir, exist_ok=True)
    with open(output_file, "w", encoding="utf-8") as f:
        yaml.safe_dump_all([spec, platform], f, sort_keys=False)
    return {"pipeline_spec": spec, "platform_spec": platform}


_PARAMETER_TYPES = {"INT": int, "NUMBER_INTEGER": int, "DOUBLE": float, "NUMBER_DOUBLE": float,
                    "STRING": str, "BOOLEAN": lambda v: v.lower() in ("1", "true", "yes")}


def parse_parameters(package_file: str, assignments: Sequence[str]) -> Dict[str, Any]:
    """``NAME=VALUE`` overrides of the compiled pipeline's run parameters, typed by the spec.

    Besides the declared parameters, the named knobs inside the JSON ones are accepted
    (``min_accuracy`` patches ``eval_config``, ``train_steps`` patches ``train_args``).

    Raises:
        SubmitError: naming the parameter, when it is unknown or its value has the wrong type.
    """
    from pipeline.runners import kfp_launcher

    try:
        spec, _ = kfp_launcher.load_package(package_file)
    except (kfp_launcher.LaunchError, yaml.YAMLError, OSError) as err:
        raise SubmitError(f"{package_file} is not a pipeline package from `tinyml-tfx compile`: {err}") from None
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    shorthands = {name: knob for name, knob in tinyml_pipeline.RUN_PARAMETER_SHORTHANDS.items() if knob[0] in declared}
    values: Dict[str, Any] = {}
    patches = []
    for assignment in assignments:
        name, sep, raw = assignment.partition("=")
        if not sep or (name not in declared and name not in shorthands):
            raise SubmitError(f"Run parameter '{assignment}' is not NAME=VALUE for a parameter of {package_file}; "
                              f"its parameters are: {', '.join(sorted([*declared, *shorthands])) or 'none'}.")
        kind = (declared[name].get("parameterType") or declared[name].get("type")) if name in declared else None
        convert = _PARAMETER_TYPES.get(kind, str) if name in declared else shorthands[name][1]
        try:
            value = convert(raw)
        except ValueError as err:
            raise SubmitError(f"Run parameter {name} takes a {kind or convert.__name__} value, not '{raw}'.") from err
        if name in declared:
            values[name] = value
        else:
            patches.append((name, value))
    for name, value in patches:
        target, _, apply = shorthands[name]
        try:
            values[target] = apply(values.get(target, declared[target].get("defaultValue")), value)
        except ValueError as err:
            raise SubmitError(f"Run parameter {name}: {err}") from None
    return values


def submit(package_file: str, host: str, namespace: str, experiment: Optional[str] = None,
           run_name: Optional[str] = None, parameters: Optional[Dict[str, Any]] = None) -> str:
    """Uploads and starts a compiled pipeline package on a Kubeflow Pipelines API; returns the run id.

    The run uses the ``pipeline-runner`` service account of kubernetes/base/rbac.yaml.

    Args:
        parameters: run parameter overrides (see ``parse_parameters``); the spec holds the defaults.

    Raises:
        SubmitError: with the host and the fix, when it is unreachable or refuses.
    """
    import kfp

    try:
        client = kfp.Client(host=host, namespace=namespace)
        result = client.create_run_from_pipeline_package(
            package_file, arguments=parameters or {}, run_name=run_name, experiment_name=experiment,
            namespace=namespace, service_account=SERVICE_ACCOUNT)
    except Exception as err:  # kfp raises urllib3, requests and ApiException errors alike
        raise SubmitError(
            f"Could not submit {package_file} to Kubeflow Pipelines at {host} (namespace {namespace}): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. Check that the host is "
            "the KFP API endpoint (e.g. http://localhost:8080 after 'kubectl port-forward -n kubeflow "
            "svc/ml-pipeline-ui 8080:80') and that you are allowed to create runs in the namespace.") from err
    return result.run_id
