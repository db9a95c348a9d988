"""Per-op cycles measured on a board, from TFLite Micro's MicroProfiler log.

The firmware change (one line, plus printing): pass a profiler to the interpreter and log
it after an invoke::

    tflite::MicroProfiler profiler;
    tflite::MicroInterpreter interpreter(model, resolver, arena, kArenaSize,
                                         /*resource_variables=*/nullptr, &profiler);
    ...
    interpreter.Invoke();
    profiler.LogCsv();        // then profiler.ClearEvents() before the next invoke

``LogCsv`` (tensorflow/lite/micro/micro_profiler.cc) prints, through ``MicroPrintf``, one
header line ``"Event","Tag","Ticks"`` and one line ``<index>,<op>,<ticks>`` per operator in
execution order. ``Log()``'s ``<op> took <ticks> ticks (<ms> ms).`` lines are read too.
Other lines of the serial log are ignored. On Cortex-M ports built from
``cortex_m_generic`` a tick is one CPU cycle (the DWT cycle counter); ports that count with
another timer give its rate (``ticks_per_second``) and the core clock.

Each profiled operator is one data point: its ticks against its work (``measure.classify``).
Per op class the cycles per unit of work are the least-squares fit through the origin with
errors proportional to work (total cycles / total work); ``spread`` is how far the
operators fall from their class's figure, weighted by their ticks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Dict, List, Optional, Sequence

from components.mcu_size_gate import measure
from components.tflm import model as tflm_model

_CSV_HEADER = re.compile(r'^\s*"Event"\s*,\s*"Tag"\s*,\s*"Ticks"\s*$')
_CSV_EVENT = re.compile(r"^\s*(\d+)\s*,\s*([^,\s]+)\s*,\s*(-?\d+)\s*$")
_LOG_EVENT = re.compile(r"^\s*(\S+) took (-?\d+) ticks \(-?\d+ ms\)\.?\s*$")


class ProfileLogError(ValueError):
    """The log cannot be read against the model; the message names the line or event and the fix."""


@dataclasses.dataclass(frozen=True)
class ProfiledOp:
    invoke: int
    index: int
    op: str
    op_class: str
    work: int
    cycles: float


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Cycles per unit of work per op class measured on a board, ready for its profile."""

    cycles_per_unit: Dict[str, float]
    spread: float
    invokes: int
    total_cycles: float
    ops: List[ProfiledOp]
    engine: str
    source: str

    def profile_block(self) -> Dict[str, object]:
        """The ``measured_op_cycles`` block of a board profile (schemas/device_profile.schema.json)."""
        return {"engine": self.engine, "source": self.source,
                "cycles_per_unit": {c: round(v, 4) for c, v in self.cycles_per_unit.items()},
                "spread": round(self.spread, 4)}


def parse_events(text: str) -> List[List[tuple]]:
    """The (operator tag, ticks) events of the log, one list per ``LogCsv`` block.

    ``Log()``-style lines, which have no header, form one list; the caller splits it by
    the model's operator count.
    """
    blocks: List[List[tuple]] = []
    plain: List[tuple] = []
    current: Optional[List[tuple]] = None
    for number, line in enumerate(text.splitlines(), start=1):
        if _CSV_HEADER.match(line):
            current = []
            blocks.append(current)
            continue
        csv = _CSV_EVENT.match(line)
        if csv and current is not None:
            current.append((csv.group(2), int(csv.group(3)), number))
            continue
        logged = _LOG_EVENT.match(line)
        if logged:
            plain.append((logged.group(1), int(logged.group(2)), number))
    if plain:
        blocks.append(plain)
    return [b for b in blocks if b]


def calibrate(log_text: str, model: bytes, log_name: str = "profile.log", model_name: str = "model.tflite",
              ticks_per_second: Optional[float] = None, clock_mhz: Optional[float] = None,
              engine: str = "TFLite Micro + CMSIS-NN") -> Calibration:
    """Fits cycles per unit of work per op class from a MicroProfiler log of ``model``.

    Raises:
        ProfileLogError: no profile in the log, or events that do not match the model's operators.
        components.tflm.TflmError: ``model`` is not a TFLite flatbuffer.
    """
    if (ticks_per_second is None) != (clock_mhz is None):
        raise ProfileLogError("Give both the tick rate (ticks per second) and the core clock (MHz), or neither "
                              "when the log's ticks are CPU cycles (the DWT cycle counter of cortex_m_generic).")
    scale = 1.0 if ticks_per_second is None else clock_mhz * 1e6 / ticks_per_second
    operators = tflm_model.operators(model)
    work = measure.op_work(operators)
    blocks = parse_events(log_text)
    if not blocks:
        raise ProfileLogError(f"{log_name} holds no MicroProfiler events (no '\"Event\",\"Tag\",\"Ticks\"' block and "
                              "no '<op> took <n> ticks' lines). Add the profiler to the firmware as described in "
                              "components/mcu_size_gate/profile_log.py and capture its serial output.")
    invokes = _split_invokes(blocks, len(operators), log_name, model_name)
    profiled = []
    for number, events in enumerate(invokes, start=1):
        for item, (tag, ticks, line) in zip(work, events):
            if tag != item.op:
                raise ProfileLogError(
                    f"{log_name} line {line}: event {item.index} of invoke {number} is {tag}, but operator "
                    f"{item.index} of {model_name} is {item.op}: the log was taken with another model. Profile "
                    f"{model_name} itself.")
            if ticks < 0:
                raise ProfileLogError(f"{log_name} line {line}: negative ticks ({ticks}); the timer wrapped. "
                                      "Profile again with a 32-bit cycle counter.")
            profiled.append(ProfiledOp(number, item.index, item.op, item.op_class, item.work, ticks * scale))
    per_unit = {}
    for op_class in measure.OP_CLASSES:
        members = [p for p in profiled if p.op_class == op_class and p.work > 0]
        if members:
            per_unit[op_class] = sum(p.cycles for p in members) / sum(p.work for p in members)
    total = sum(p.cycles for p in profiled)
    deviation = sum(abs(p.cycles - per_unit[p.op_class] * p.work) for p in profiled if p.op_class in per_unit)
    digest = hashlib.sha256(model).hexdigest()[:12]
    source = (f"MicroProfiler log {os.path.basename(log_name)} of {os.path.basename(model_name)} (sha256 {digest}), "
              f"{len(invokes)} invoke(s), read by tinyml-tfx devices calibrate")
    return Calibration(per_unit, deviation / total if total else 0.0, len(invokes), total / len(invokes), profiled,
                       engine, source)


def _split_invokes(blocks: Sequence[List[tuple]], operator_count: int, log_name: str,
                   model_name: str) -> List[List[tuple]]:
    invokes = []
    for events in blocks:
        if len(events) % operator_count:
            raise ProfileLogError(
                f"{log_name} line {events[0][2]}: a profile of {len(events)} events, but {model_name} has "
                f"{operator_count} operators per invoke: the log is cut off or of another model. Capture a whole "
                "LogCsv block for each invoke.")
        invokes.extend(events[i:i + operator_count] for i in range(0, len(events), operator_count))
    return invokes
