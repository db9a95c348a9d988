"""Shared fixtures: a tiny generated keyword dataset."""

from __future__ import annotations

import os
import shutil

import pytest

from pipeline import run_local
from pipeline.tasks.kws import generate
from tests.helpers import tiny_config, tiny_spec


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """A tiny synthetic dataset, generated once per test session; do not modify it."""
    root = str(tmp_path_factory.mktemp("tiny") / "kws")
    generate.generate_dataset(tiny_spec(), root, processes=2)
    return root


@pytest.fixture(scope="session")
def tiny_pipeline_runs(tiny_dataset, tmp_path_factory):
    """Three runs of the whole pipeline on the tiny dataset, with a bad WAV planted in the data.

    Returns (config, [summary of each run]); shared by the e2e and component tests.
    """
    work = tmp_path_factory.mktemp("e2e")
    data = str(work / "data")
    shutil.copytree(tiny_dataset, data)
    with open(os.path.join(data, "yes", "deadbeef_nohash_0.wav"), "wb") as f:
        f.write(b"RIFF\x00\x00\x00\x00WAVEjunk")
    config = tiny_config(str(work / "run"), data)
    return config, [run_local.run(config) for _ in range(3)]
