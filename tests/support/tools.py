"""External tools the tests run (docker-registry, cosign, kustomize, chromium, objdump...): one policy.

A missing tool skips its tests on a developer's machine, but FAILS them when the suite must
prove everything it claims: when ``CI`` is set (``.ci/run`` runs under CI=true), when
``TINYML_TFX_REQUIRE_TOOLS=1``, or with ``pytest --require-tools`` (tests/conftest.py turns
the option into that variable, so subprocesses see it too). The message names the tool and
how the project installs it.

    from tests.support.tools import require_tool, tool_missing
    path = require_tool("kustomize", KUSTOMIZE)          # the path, or skip/fail
    tool_missing("docker-registry", DOCKER_REGISTRY, "it did not start")  # skip/fail with a reason
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

REQUIRE_ENV = "TINYML_TFX_REQUIRE_TOOLS"
_ROOT = "scripts/devenv.sh installs it in the Debian 13 root (ROOT_TOOLS)"
# How the project installs each tool, for the messages.
DOCKER_REGISTRY = f"{_ROOT}: apt packages docker-registry and apache2-utils (htpasswd)"
COSIGN = f"{_ROOT}: apt package cosign (2.5 in Debian 13)"
KUSTOMIZE = f"{_ROOT}: apt package kustomize"
CHROMIUM = f"{_ROOT}: apt package chromium"
OPENSSL = "the Debian 13 root's ca-certificates package depends on openssl (scripts/devenv.sh ROOT_PACKAGES)"


def tools_required() -> bool:
    """Whether a missing tool is a failure: under CI, ``TINYML_TFX_REQUIRE_TOOLS=1`` or ``--require-tools``."""
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "0", "false", "no") or os.environ.get(REQUIRE_ENV, "").strip() == "1"


def tool_missing(name: str, how_installed: str, detail: str = "is not installed here") -> NoReturn:
    """Skips the test, or fails it when tools are required (see ``tools_required``)."""
    message = (f"{name} {detail}. The project provides it: {how_installed}. Run the tests through "
               "`make test` (or scripts/devenv.sh exec) to get it.")
    if tools_required():
        pytest.fail(f"{message} A missing test tool fails the suite under CI, {REQUIRE_ENV}=1 or --require-tools.",
                    pytrace=False)
    pytest.skip(message)


def require_tool(name: str, how_installed: str) -> str:
    """The path of executable ``name``; skips or fails (``tool_missing``) when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        tool_missing(name, how_installed)
    return path
