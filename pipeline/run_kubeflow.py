"""The same pipeline for Kubeflow Pipelines v2: compile to a pipeline spec, submit a run.

TFX 1.21 declares ``kfp`` only for Python < 3.12 and ``tfx.v1.orchestration.experimental``
swallows the failed import of ``KubeflowV2DagRunner``; requirements.lock pins ``kfp``
and ``kfp-pipeline-spec`` 2.16, and the runner is imported from its own module.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

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
    runner.run(kws_pipeline.create_pipeline(config), write_out=True)
    with open(output_file, encoding="utf-8") as f:
        return json.load(f)


def submit(spec_file: str, host: str, namespace: str, experiment: Optional[str] = None,
           run_name: Optional[str] = None) -> str:
    """Uploads and starts a compiled pipeline on a Kubeflow Pipelines API; returns the run id.

    Raises:
        SubmitError: with the host and the fix, when it is unreachable or refuses.
    """
    import kfp

    try:
        client = kfp.Client(host=host, namespace=namespace)
        result = client.create_run_from_pipeline_package(
            spec_file, arguments={}, run_name=run_name, experiment_name=experiment, namespace=namespace)
    except Exception as err:  # kfp raises urllib3, requests and ApiException errors alike
        raise SubmitError(
            f"Could not submit {spec_file} to Kubeflow Pipelines at {host} (namespace {namespace}): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. Check that the host is "
            "the KFP API endpoint (e.g. http://localhost:8080 after 'kubectl port-forward -n kubeflow "
            "svc/ml-pipeline-ui 8080:80') and that you are allowed to create runs in the namespace.") from err
    return result.run_id
