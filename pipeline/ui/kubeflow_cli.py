"""The Kubeflow verbs: compile a KFP package, submit it."""

from __future__ import annotations

from typing import Optional

import click

from pipeline import config as config_lib
from pipeline.ui.cli_common import (EXIT_FAILED, EXIT_USAGE, config_option, fail)

@click.command("compile")
@config_option
@click.option("--output", default="build/kubeflow/pipeline.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="Where the KFP package (.yaml) goes.")
def compile_command(config_path: str, output: str) -> None:
    """Compile the pipeline into a Kubeflow Pipelines v2 package (KubeflowV2DagRunner).

    The package holds the pipeline spec and the Kubernetes platform spec (the Secrets the
    OtaPusher's pod reads); `submit` or the KFP UI uploads it.
    """
    from pipeline.runners import kubeflow as run_kubeflow

    if not output.endswith((".yaml", ".yml")):
        fail(f"--output {output}: a KFP package is a .yaml file (what the kfp client and the KFP UI upload); "
              "name it e.g. build/kubeflow/pipeline.yaml.", EXIT_USAGE)
    try:
        config = config_lib.load_config(config_path).for_kubeflow()
    except config_lib.ConfigError as err:
        fail(str(err), EXIT_USAGE)
    package = run_kubeflow.compile_pipeline(config, output)
    tasks = package["pipeline_spec"]["root"]["dag"]["tasks"]
    click.echo(f"Compiled '{config.pipeline_name}' ({len(tasks)} tasks, image {config.kubeflow.image}) to {output}")


@click.command("submit")
@click.argument("package_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", required=True, help="The Kubeflow Pipelines API endpoint.")
@click.option("--namespace", default="kubeflow", show_default=True)
@click.option("--experiment", default=None, help="Experiment to file the run under.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a run parameter (target_device, max_quantization_drop, calibration_examples, "
              "train_args, eval_config; for keyword spotting also max_false_accepts_per_hour, "
              "max_false_reject_rate) or a knob inside them (train_steps, min_accuracy).")
def submit_command(package_file: str, host: str, namespace: str, experiment: Optional[str], params) -> None:
    """Upload a compiled pipeline package and start a run on Kubeflow Pipelines."""
    from pipeline.runners import kubeflow as run_kubeflow

    try:
        parameters = run_kubeflow.parse_parameters(package_file, params)
    except run_kubeflow.SubmitError as err:
        fail(str(err), EXIT_USAGE)
    try:
        run_id = run_kubeflow.submit(package_file, host, namespace, experiment, parameters=parameters)
    except run_kubeflow.SubmitError as err:
        fail(str(err), EXIT_FAILED)
    click.echo(f"Started run {run_id} on {host} (namespace {namespace})")


