"""TFLite Micro's own interpreter (the reference kernels of the installed ``tflite-micro`` wheel):
construct it, invoke it, read TFLM's C-level log.

TFLM reports why a kernel failed only on file descriptor 2, not in the Python exception, so
every call that can fail captures it and names the failing op.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pickle
import re
import tempfile
from typing import Any, Callable, List, Optional

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


class TflmAborted(TflmError):
    """TFLite Micro aborted the process (an internal check failed) instead of raising an error."""


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` run in a forked child; its result (or its exception) comes back by a pipe.

    TFLite Micro's Python interpreter aborts the whole process on some internal checks instead
    of raising (near a model's smallest arena: "All temp buffers must be freed before calling
    ResetTempAllocations()"; on some untrained int8 models, with no message at all). In a child,
    that ends the child only, and becomes ``TflmAborted`` here.

    Raises:
        TflmAborted: the child died by a signal.
        TflmError: ``function`` raised one (re-raised with its message).
    """
    # Loaded before the fork: initialising TFLM's extension module in a forked child of a
    # multi-threaded (TensorFlow) process crashes it.
    from tflite_micro.python.tflite_micro import runtime  # noqa: F401

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe only, never return into the caller's stack
        status = 1
        try:
            os.close(read_end)
            # An abort is the expected outcome of some probes; a Python fault handler (pytest's)
            # would print the child's stack for each one.
            faulthandler.disable()
            try:
                outcome = ("result", function(*args))
            except Exception as err:  # noqa: BLE001 - carried to the parent, which raises it
                outcome = ("error", f"{type(err).__name__}: {err}" if not isinstance(err, TflmError) else str(err))
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(outcome, pipe)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    if not data:
        code = os.waitstatus_to_exitcode(wait_status)
        raise TflmAborted(f"TensorFlow Lite Micro aborted (exit status {code}) without saying why.")
    kind, value = pickle.loads(data)
    if kind == "error":
        raise TflmError(value)
    return value


def _invokes(model: bytes, arena_size: int, example: np.ndarray) -> bool:
    from tflite_micro.python.tflite_micro import runtime

    try:
        with captured_c_stderr():
            candidate = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
            candidate.set_input(example, 0)
            candidate.invoke()
        return True
    except RuntimeError:
        return False


def runs(model: bytes, arena_size: int, example: np.ndarray) -> bool:
    """Whether ``model`` allocates and invokes on ``example`` with an arena of ``arena_size`` bytes
    (probed in a child process: an abort means "does not run")."""
    try:
        return in_child(_invokes, model, arena_size, example)
    except TflmAborted:
        return False


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
