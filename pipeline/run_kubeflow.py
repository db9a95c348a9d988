"""The same pipeline for Kubeflow Pipelines v2: compile to a pipeline spec, submit a run.

TFX 1.21 declares ``kfp`` only for Python < 3.12 and ``tfx.v1.orchestration.experimental``
swallows the failed import of ``KubeflowV2DagRunner``; requirements.lock pins ``kfp``
and ``kfp-pipeline-spec`` 2.16, and the runner is imported from its own module.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence

from pipeline import pipeline as kws_pipeline
from pipeline.config import PipelineConfig


class SubmitError(RuntimeError):
    """The Kubeflow Pipelines API could not be reached or refused the run."""


def compile_pipeline(config: PipelineConfig, output_file: str) -> Dict[str, Any]:
    """Compiles ``config``'s pipeline into a KFP v2 pipeline spec (JSON) at ``output_file``.

    Args:
        config: a config prepared with ``for_kubeflow()``.
        output_file: where the spec goes (``.json``).

    Returns:
        The compiled job spec (displayName, pipelineSpec, runtimeConfig).
    """
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    output_dir, name = os.path.split(os.path.abspath(output_file))
    os.makedirs(output_dir, exist_ok=True)
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            display_name=config.pipeline_name, default_image=config.kubeflow.image),
        output_dir=output_dir, output_filename=name)
    defaults = {name: parameter.default for name, parameter in kws_pipeline.runtime_parameters(config).items()}
    runner.run(kws_pipeline.create_pipeline(config), parameter_values=defaults, write_out=True)
    with open(output_file, encoding="utf-8") as f:
        return json.load(f)


_PARAMETER_TYPES = {"INT": int, "NUMBER_INTEGER": int, "DOUBLE": float, "NUMBER_DOUBLE": float,
                    "STRING": str, "BOOLEAN": lambda v: v.lower() in ("1", "true", "yes")}


def parse_parameters(spec_file: str, assignments: Sequence[str]) -> Dict[str, Any]:
    """``NAME=VALUE`` overrides of the compiled pipeline's run parameters, typed by the spec.

    Raises:
        SubmitError: naming the parameter, when it is unknown or its value has the wrong type.
    """
    with open(spec_file, encoding="utf-8") as f:
        job = json.load(f)
    declared = job.get("pipelineSpec", {}).get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    values: Dict[str, Any] = {}
    for assignment in assignments:
        name, sep, raw = assignment.partition("=")
        if not sep or name not in declared:
            raise SubmitError(f"Run parameter '{assignment}' is not NAME=VALUE for a parameter of {spec_file}; "
                              f"its parameters are: {', '.join(sorted(declared)) or 'none'}.")
        kind = declared[name].get("parameterType") or declared[name].get("type")
        try:
            values[name] = _PARAMETER_TYPES.get(kind, str)(raw)
        except ValueError as err:
            raise SubmitError(f"Run parameter {name} takes a {kind} value, not '{raw}'.") from err
    return values


def submit(spec_file: str, host: str, namespace: str, experiment: Optional[str] = None,
           run_name: Optional[str] = None, parameters: Optional[Dict[str, Any]] = None) -> str:
    """Uploads and starts a compiled pipeline on a Kubeflow Pipelines API; returns the run id.

    Args:
        parameters: run parameter overrides (see ``parse_parameters``); the spec holds the defaults.

    Raises:
        SubmitError: with the host and the fix, when it is unreachable or refuses.
    """
    import kfp

    try:
        client = kfp.Client(host=host, namespace=namespace)
        result = client.create_run_from_pipeline_package(
            spec_file, arguments=parameters or {}, run_name=run_name, experiment_name=experiment,
            namespace=namespace)
    except Exception as err:  # kfp raises urllib3, requests and ApiException errors alike
        raise SubmitError(
            f"Could not submit {spec_file} to Kubeflow Pipelines at {host} (namespace {namespace}): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. Check that the host is "
            "the KFP API endpoint (e.g. http://localhost:8080 after 'kubectl port-forward -n kubeflow "
            "svc/ml-pipeline-ui 8080:80') and that you are allowed to create runs in the namespace.") from err
    return result.run_id
