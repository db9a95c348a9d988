"""Shared fixtures: a tiny generated keyword dataset."""

from __future__ import annotations

import ast
import os
import pathlib
import shutil
from typing import Set

import pytest

from pipeline.runners import local as run_local
from pipeline.tasks.kws import generate
from tests.helpers import (E2E_WORDS, build_tiny_saved_model, rename_class_folder, tiny_config, tiny_model_data,
                           tiny_spec)


def pytest_addoption(parser):
    parser.addoption("--require-tools", action="store_true", default=False,
                     help="Fail (not skip) tests whose external tool is missing (as CI=true does); "
                          "see tests/support/tools.py.")


def pytest_configure(config):
    from tests.support import tools

    if config.getoption("--require-tools"):
        os.environ[tools.REQUIRE_ENV] = "1"  # read by tests.support.tools, and by any subprocess


# Test modules that take this session fixture (three pipeline runs) run on one pytest-xdist worker.
SHARED_RUNS_FIXTURE = "tiny_pipeline_runs"


def modules_taking(fixture: str, tests_dir: pathlib.Path) -> Set[str]:
    """The test modules below ``tests_dir`` (paths relative to its parent, as in node ids) with a function
    that takes ``fixture`` as an argument: a test, or a fixture of the module built on it."""
    modules = set()
    for path in sorted(tests_dir.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and
               any(arg.arg == fixture for arg in node.args.args) for node in ast.walk(tree)):
            modules.add(path.relative_to(tests_dir.parent).as_posix())
    return modules


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` (as ``make test`` runs it), except that the modules taking
    ``tiny_pipeline_runs`` are one unit: a session fixture is built once per worker that uses it.

    (Not ``--dist loadgroup`` with ``xdist_group`` marks: on pytest 9.2 the group no longer reaches
    the scheduler, and the tests are spread as if unmarked: pytest-dev/pytest-xdist#1386.)
    """
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    shared = modules_taking(SHARED_RUNS_FIXTURE, pathlib.Path(__file__).parent)

    class ModulesScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_RUNS_FIXTURE if module in shared else module

    return ModulesScheduling(config, log)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """A tiny synthetic dataset, generated once per test session; do not modify it."""
    root = str(tmp_path_factory.mktemp("tiny") / "kws")
    generate.generate_dataset(tiny_spec(), root, processes=2)
    return root


@pytest.fixture(scope="session")
def tiny_pipeline_runs(tiny_dataset, tmp_path_factory):
    """Three runs of the whole pipeline on the tiny dataset, with a bad WAV planted in the data and the
    class "up" renamed "Up-Ñ" (folder and lists), as a real dataset may name it.

    Returns (config, [summary of each run]); shared by the e2e and component tests.
    """
    work = tmp_path_factory.mktemp("e2e")
    data = str(work / "data")
    shutil.copytree(tiny_dataset, data)
    with open(os.path.join(data, "yes", "deadbeef_nohash_0.wav"), "wb") as f:
        f.write(b"RIFF\x00\x00\x00\x00WAVEjunk")
    rename_class_folder(data, "up", E2E_WORDS[2])
    config = tiny_config(str(work / "run"), data, words=E2E_WORDS)
    return config, [run_local.run(config) for _ in range(3)]


@pytest.fixture(scope="session")
def tiny_saved_model(tmp_path_factory):
    """The tiny classifier of tests.helpers, trained and saved once per session."""
    return build_tiny_saved_model(str(tmp_path_factory.mktemp("tiny_model") / "saved"))


@pytest.fixture(scope="session")
def tiny_int8_model(tiny_saved_model):
    """The tiny classifier converted to a full-integer int8 flatbuffer."""
    from components.tflite_quantizer import quantize

    return quantize.convert(tiny_saved_model, "serving_features", "int8", tiny_model_data(100, 2)[0])
