"""Shared fixtures: a tiny generated keyword dataset."""

from __future__ import annotations

import pytest

from pipeline.tasks.kws import generate
from tests.helpers import tiny_spec


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """A tiny synthetic dataset, generated once per test session; do not modify it."""
    root = str(tmp_path_factory.mktemp("tiny") / "kws")
    generate.generate_dataset(tiny_spec(), root, processes=2)
    return root
