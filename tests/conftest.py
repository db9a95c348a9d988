"""Shared fixtures: a tiny generated keyword dataset."""

from __future__ import annotations

import os
import shutil

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
