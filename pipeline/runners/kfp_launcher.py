"""Run a compiled Kubeflow Pipelines package on this machine, task by task, as KFP runs it in pods.

For proving a compiled pipeline before its first cluster run (the tests do). Every container
task runs its command and arguments from the spec -- TFX's v2 container entrypoint -- as a
subprocess, with ``{{$}}`` replaced by the ``ExecutorInput`` JSON that KFP's driver builds:
input artifacts from the producing tasks' executor output, parameters from the spec's
constants and the run's parameters, output URIs under the pipeline root. Environment
variables come from the Kubernetes platform spec's ``secretAsEnv`` entries, filled from the
secrets the caller hands in (as the cluster's Secrets would be). Trigger conditions are
evaluated on the input artifacts' metadata, as KFP's driver evaluates their CEL.

A container's ``lifecycle.preCacheCheck`` (TFX's FileBasedExampleGen span driver) runs first, and
its resolved parameters reach the executor, as KFP's launcher merges them.

Not a KFP backend: no caching and no ML Metadata. Resolver tasks (ML Metadata queries, here
for the latest blessed model) resolve to nothing, as on a cluster with no blessed model yet.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import uuid
from typing import Any, Dict, List, Mapping, Optional

import yaml

_ARTIFACT_METADATA = re.compile(r"inputs\.artifacts\['([^']+)'\]\.artifacts\[(\d+)\]\.metadata\['([^']+)'\]")


class LaunchError(RuntimeError):
    """A task failed, or the package asks for something this launcher cannot give (named in the message)."""


@dataclasses.dataclass
class TaskRun:
    """What happened to one task: ``succeeded``, ``skipped`` (condition false or upstream skipped) or
    ``resolved`` (a resolver task); its output artifacts as KFP records them."""

    state: str
    outputs: Dict[str, List[Dict[str, Any]]] = dataclasses.field(default_factory=dict)
    condition: Optional[str] = None


def load_package(path: str):
    """The pipeline spec and the platform spec (``{}`` when absent) of a KFP package (.yaml)."""
    with open(path, encoding="utf-8") as f:
        docs = [doc for doc in yaml.safe_load_all(f) if doc]
    if not docs or "root" not in docs[0]:
        raise LaunchError(f"{path} is not a KFP pipeline package: its first document has no 'root' DAG.")
    return docs[0], (docs[1] if len(docs) > 1 else {})


def task_order(spec: Mapping[str, Any]) -> List[str]:
    """The root DAG's tasks in an order that runs every task after the tasks it depends on."""
    tasks = spec["root"]["dag"]["tasks"]
    pending = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    order: List[str] = []
    while pending:
        ready = sorted(name for name, deps in pending.items() if deps <= set(order))
        if not ready:
            raise LaunchError(f"The DAG has a cycle among {', '.join(sorted(pending))}.")
        order.extend(ready)
        for name in ready:
            del pending[name]
    return order


def evaluate_condition(condition: str, artifacts: Mapping[str, List[Mapping[str, Any]]]) -> bool:
    """Evaluates the CEL subset TFX emits for ``tfx.dsl.Cond``: artifact metadata compared with
    literals, joined by ``&&``, ``||`` and ``!``. A missing artifact or key is an error, as on KFP."""

    def lookup(key: str, index: int, field: str):
        try:
            return artifacts[key][index]["metadata"][field]
        except (KeyError, IndexError):
            raise LaunchError(f"Trigger condition {condition!r} reads inputs.artifacts['{key}'][{index}]"
                              f".metadata['{field}'], which the task does not have.") from None

    expression = _ARTIFACT_METADATA.sub(lambda m: f"_lookup({m.group(1)!r}, {m.group(2)}, {m.group(3)!r})",
                                        condition)
    expression = expression.replace("&&", " and ").replace("||", " or ")
    expression = re.sub(r"!(?!=)", " not ", expression)
    tree = ast.parse(expression.strip(), mode="eval")
    allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Eq, ast.NotEq,
               ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Constant, ast.Call, ast.Name, ast.Load)
    for node in ast.walk(tree):
        if not isinstance(node, allowed) or (isinstance(node, ast.Name) and node.id != "_lookup"):
            raise LaunchError(f"Trigger condition {condition!r} uses {type(node).__name__}, outside the CEL "
                              "subset TFX emits.")
    return bool(eval(compile(tree, "<condition>", "eval"), {"__builtins__": {}}, {"_lookup": lookup}))


def _parameter_value(spec_value: Mapping[str, Any], run_parameters: Mapping[str, Any], task: str, key: str):
    if "componentInputParameter" in spec_value:
        return run_parameters[spec_value["componentInputParameter"]]
    runtime = spec_value.get("runtimeValue", {})
    if "constant" in runtime:
        return runtime["constant"]
    raise LaunchError(f"Task {task}: parameter {key} is {spec_value}, which this launcher does not resolve.")


def secret_env(executor_config: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]],
               task: str) -> Dict[str, str]:
    """The environment a task's Kubernetes executor config (``secretAsEnv``) gives its pod.

    Raises:
        LaunchError: naming the Secret and key, when a non-optional one is not in ``secrets``.
    """
    env = {}
    for entry in executor_config.get("secretAsEnv", []):
        name = entry["secretName"]
        for mapping in entry.get("keyToEnv", []):
            value = secrets.get(name, {}).get(mapping["secretKey"])
            if value is None:
                if entry.get("optional"):
                    continue
                raise LaunchError(f"Task {task} needs key '{mapping['secretKey']}' of Secret '{name}' as "
                                  f"{mapping['envVar']}; create the Secret (kubernetes/README.md).")
            env[mapping["envVar"]] = value
    return env


def _run_container(command: List[str], env: Mapping[str, str], task_root: str, log_name: str, task: str,
                   timeout: float) -> None:
    result = subprocess.run(command, env=dict(env), capture_output=True, text=True, timeout=timeout)
    with open(os.path.join(task_root, log_name), "w", encoding="utf-8") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise LaunchError(f"Task {task} failed (exit {result.returncode}); log {task_root}/{log_name} ends:\n{tail}")


def _pre_cache_check(hook: Mapping[str, Any], executor_input: Dict[str, Any], outputs: Dict[str, List[Dict[str, Any]]],
                     task_root: str, env: Mapping[str, str], task: str, timeout: float) -> None:
    """Runs a container's ``lifecycle.preCacheCheck`` (TFX's FileBasedExampleGen driver: it resolves ``{SPAN}``,
    the version and the input fingerprint) and, as KFP's launcher does, merges the ``ExecutorOutput`` it writes:
    its parameters into the executor's input, its artifact metadata into the declared outputs."""
    driver_input = {**executor_input, "outputs": {**executor_input["outputs"],
                                                   "outputFile": os.path.join(task_root, "driver_output.json")}}
    command = list(hook.get("command", [])) + [
        json.dumps(driver_input) if arg == "{{$}}" else arg for arg in hook.get("args", [])]
    _run_container(command, env, task_root, "driver_log.txt", task, timeout)
    with open(driver_input["outputs"]["outputFile"], encoding="utf-8") as f:
        resolved = json.load(f)
    executor_input["inputs"]["parameterValues"].update(resolved.get("parameterValues", {}))
    for key, produced in resolved.get("artifacts", {}).items():
        if key in outputs:
            for declared, artifact in zip(outputs[key], produced.get("artifacts", [])):
                declared["metadata"].update(artifact.get("metadata", {}))


def run_package(package: str, pipeline_root: str, parameters: Optional[Mapping[str, Any]] = None,
                secrets: Optional[Mapping[str, Mapping[str, str]]] = None,
                env: Optional[Mapping[str, str]] = None, timeout: float = 1800.0) -> Dict[str, TaskRun]:
    """Runs every task of ``package`` in dependency order; returns each task's outcome.

    Args:
        package: a KFP package written by ``run_kubeflow.compile_pipeline``.
        pipeline_root: where output artifacts go (a local folder standing in for the object store).
        parameters: run parameter overrides; the spec's defaults fill the rest.
        secrets: Secret name -> key -> value, for the platform spec's ``secretAsEnv``.
        env: the base environment of every task (default: this process's).

    Raises:
        LaunchError: naming the task, when one fails (with the end of its log).
    """
    spec, platform = load_package(package)
    run_id = uuid.uuid4().hex[:12]
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    run_parameters = {name: p["defaultValue"] for name, p in declared.items() if "defaultValue" in p}
    run_parameters.update(parameters or {})
    missing = sorted(set(declared) - set(run_parameters))
    if missing:
        raise LaunchError(f"Run parameters {', '.join(missing)} have no default in {package}; give them.")
    executors = spec["deploymentSpec"]["executors"]
    kubernetes = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    runs: Dict[str, TaskRun] = {}
    for name in task_order(spec):
        task = spec["root"]["dag"]["tasks"][name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = executors[component["executorLabel"]]
        if any(runs[dep].state == "skipped" for dep in task.get("dependentTasks", [])):
            runs[name] = TaskRun("skipped")
            continue
        if "resolver" in executor:
            runs[name] = TaskRun("resolved", {key: [] for key in component.get("outputDefinitions", {})
                                              .get("artifacts", {})})
            continue
        artifacts = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source["taskOutputArtifact"]
            artifact_type = component["inputDefinitions"]["artifacts"][key]["artifactType"]
            artifacts[key] = [{**a, "type": artifact_type}
                              for a in runs[producer["producerTask"]].outputs[producer["outputArtifactKey"]]]
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition and not evaluate_condition(condition, artifacts):
            runs[name] = TaskRun("skipped", condition=condition)
            continue
        task_root = os.path.join(pipeline_root, run_id, name)
        outputs = {key: [{"name": f"{run_id}/{name}/{key}", "type": definition["artifactType"],
                          "uri": os.path.join(task_root, key), "metadata": {}}]
                   for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()}
        executor_input = {
            "inputs": {"artifacts": {k: {"artifacts": v} for k, v in artifacts.items()},
                       "parameterValues": {k: _parameter_value(v, run_parameters, name, k)
                                           for k, v in task.get("inputs", {}).get("parameters", {}).items()}},
            "outputs": {"artifacts": {k: {"artifacts": v} for k, v in outputs.items()},
                        "outputFile": os.path.join(task_root, "executor_output.json")},
        }
        container = executor["container"]
        task_env = dict(os.environ if env is None else env)
        task_env.update(secret_env(kubernetes.get(component["executorLabel"], {}), secrets or {}, name))
        os.makedirs(task_root, exist_ok=True)
        hook = container.get("lifecycle", {}).get("preCacheCheck")
        if hook:
            _pre_cache_check(hook, executor_input, outputs, task_root, task_env, name, timeout)
        command = list(container.get("command", [])) + [
            json.dumps(executor_input) if arg == "{{$}}" else arg for arg in container.get("args", [])]
        _run_container(command, task_env, task_root, "log.txt", name, timeout)
        with open(executor_input["outputs"]["outputFile"], encoding="utf-8") as f:
            produced = json.load(f).get("artifacts", {})
        for key, declared_artifacts in outputs.items():
            if key in produced:
                # What KFP records: the executor's metadata and URI over the declared artifact.
                outputs[key] = [{**declared_artifacts[0], **artifact} for artifact in produced[key]["artifacts"]]
        runs[name] = TaskRun("succeeded", outputs, condition)
    return runs
