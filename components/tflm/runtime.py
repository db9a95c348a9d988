"""TFLite Micro's own interpreter (the reference kernels of the installed ``tflite-micro`` wheel):
construct it, invoke it, read TFLM's C-level log.

TFLM reports why a kernel failed only on file descriptor 2, not in the Python exception, so
every call that can fail captures it and names the failing op.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from typing import List, Optional

import numpy as np

from components.tflm import TflmError, model as tflm_model

_FAILED_NODE = re.compile(r"Node (\w+) \(number \d+\) failed")


@contextlib.contextmanager
def captured_c_stderr():
    """Captures what C code writes to file descriptor 2 (TFLite Micro's log) into a list of lines."""
    lines: List[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def default_arena_size(model: bytes) -> int:
    """An arena comfortably larger than any model of this size needs (for loading, not for measuring)."""
    return max(len(model) * 10, 256 * 1024)


def interpreter(model: bytes, arena_size: Optional[int] = None):
    """A TFLite Micro interpreter for ``model`` with its tensors allocated.

    Raises:
        TflmError: naming the failing op, when TFLite Micro cannot load the model.
    """
    from tflite_micro.python.tflite_micro import runtime

    info = tflm_model.describe(model)  # a file that is not a model fails here, with its own message
    with captured_c_stderr() as log:
        try:
            return runtime.Interpreter.from_bytes(model, arena_size=arena_size or default_arena_size(model))
        except RuntimeError as err:
            failure = err
    failed_ops = sorted({m.group(1) for line in log for m in [_FAILED_NODE.search(line)] if m})
    details = "; ".join(line for line in log if line.strip())[:600]
    ops = ", ".join(f"{o['name']} v{o['version']}" for o in info["ops"])
    named = f" The failing op: {', '.join(failed_ops)}." if failed_ops else ""
    raise TflmError(
        f"TensorFlow Lite Micro cannot load the model ({failure}).{named} TFLM says: {details}. "
        f"The model's ops: {ops}. TFLite Micro runs float32 and int8 kernels only (no float16 weights, "
        "no hybrid dynamic-range kernels); use mode int8, or replace the op.") from failure


def runs(model: bytes, arena_size: int, example: np.ndarray) -> bool:
    """Whether ``model`` allocates and invokes on ``example`` with an arena of ``arena_size`` bytes.

    Each probe runs in a forked child: near its smallest arena, TFLM's Python interpreter can
    abort the whole process on an internal check (e.g. "All temp buffers must be freed before
    calling ResetTempAllocations()") instead of raising, and an aborted probe simply means
    "does not run".
    """
    # Loaded before the fork: initialising TFLM's extension module in a forked child of a
    # multi-threaded (TensorFlow) process crashes it.
    from tflite_micro.python.tflite_micro import runtime

    pid = os.fork()
    if pid == 0:  # the child: report by exit status only, never return into the caller's stack
        status = 1
        try:
            with captured_c_stderr():
                candidate = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
                candidate.set_input(example, 0)
                candidate.invoke()
            status = 0
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status) == 0


def zero_input(model: bytes) -> np.ndarray:
    """An all-zero example for the model's first input, in its dtype."""
    inp = tflm_model.describe(model)["inputs"][0]
    return np.zeros(inp["shape"], dtype=np.int8 if inp["dtype"] == "int8" else np.float32)


def quantize_input(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """Float features to the model's integer input: round(x / scale) + zero_point, saturated."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The model's integer output back to float: (q - zero_point) * scale."""
    return (q.astype(np.float32) - zero_point) * scale


def predict(model: bytes, features: np.ndarray, run_one=None) -> np.ndarray:
    """Float outputs of ``model`` on ``features`` (one example per row), inputs quantized and
    outputs dequantized by the tensors' scale and zero point.

    ``run_one`` runs one prepared input through another interpreter (e.g. desktop TFLite);
    by default TFLite Micro runs it.

    Raises:
        TflmError: when TFLite Micro cannot load the model.
    """
    info = tflm_model.describe(model)
    inp, out = info["inputs"][0], info["outputs"][0]
    if run_one is None:
        micro = interpreter(model)

        def run_one(x):
            micro.set_input(x, 0)
            micro.invoke()
            return micro.get_output(0)

    results = []
    for example in features:
        x = example[np.newaxis].astype(np.float32)
        if inp["dtype"] == "int8":
            x = quantize_input(x, inp["scale"], inp["zero_point"])
        y = np.asarray(run_one(x)).reshape(-1)
        if out["dtype"] == "int8":
            y = dequantize(y, out["scale"], out["zero_point"])
        results.append(y.astype(np.float32))
    return np.stack(results) if results else np.zeros((0, 0), np.float32)
