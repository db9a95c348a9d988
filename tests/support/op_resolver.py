"""Compiles a generated ``micro_op_resolver.h`` with g++ against a stand-in for TFLite Micro's
op resolver API (tests/data/tflm_api_stub: every builtin Add<Op>() of the real header, each
recording the op it registers) and runs it, so tests see which ops the header registers."""

from __future__ import annotations

import os
import subprocess
from typing import List

TFLM_API_STUB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "tflm_api_stub")

_MAIN = r'''
#include <cstdio>
#include "micro_op_resolver.h"
int main() {
  ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) { std::printf("failed\n"); return 1; }
  for (unsigned int i = 0; i < resolver.registered; ++i) std::printf("%s\n", resolver.ops[i]);
  return 0;
}
'''


def registered_ops(header: str, folder) -> List[str]:
    """The ops ``header`` registers, in order.

    Raises:
        AssertionError: when it does not compile against the API, or RegisterModelOps fails
            (more ops than kModelOpCount, or one op registered twice).
    """
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "micro_op_resolver.h"), "w") as f:
        f.write(header)
    with open(os.path.join(folder, "main.cc"), "w") as f:
        f.write(_MAIN)
    binary = os.path.join(folder, "register")
    compiled = subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", TFLM_API_STUB, "-I", str(folder),
                               "-o", binary, os.path.join(folder, "main.cc")], capture_output=True, text=True)
    if compiled.returncode:
        raise AssertionError("the generated op resolver does not compile: " + compiled.stderr[-800:])
    run = subprocess.run([binary], capture_output=True, text=True)
    if run.returncode:
        raise AssertionError(f"RegisterModelOps failed: {run.stdout}")
    return run.stdout.split()
