"""Flash taken by the TFLite Micro runtime and by each kernel, measured on compiled TFLM code.

No Cortex-M build of TFLite Micro can be made here (its sources are not reachable), so the
table is measured on the compiled TFLM that is installed: the x86-64 ``_runtime.so`` in
the ``tflite-micro`` wheel, which holds the same sources with symbols. The measurement is
what a linker with ``--gc-sections`` keeps:

* the **runtime** is every function reachable from the ``MicroInterpreter`` entry points
  a firmware calls (constructor, ``AllocateTensors``, ``Invoke``, ``input``, ``output``);
* a **kernel** is every function reachable from its ``Register_<OP>()`` that the runtime
  does not already contain.

The wheel is built with TFLM's model compression (``USE_TFLM_COMPRESSION``), which a
default firmware build leaves out; its code (decompression routines, about half of the
runtime here) is kept apart as ``compression_bytes`` and not counted in ``runtime_bytes``.

Reachability follows direct calls and jumps, addresses taken in code (``lea``: the
kernel's ``Init``/``Prepare``/``Eval`` pointers, and the constant tables a kernel reads)
and pointers stored in data (vtables, through the relocation table).

Read-only data is counted too, apart from the code: every named object in ``.rodata`` and
``.data.rel.ro`` (lookup tables, vtables, constant parameter tables) and ``.data`` (whose
initial values a firmware keeps in flash) that the runtime or a kernel reaches. A
microcontroller keeps these in flash next to the code. Not counted: unnamed constants
(string literals of TFLM's log messages, which a release build drops with
``TF_LITE_STRIP_ERROR_STRINGS``, and compiler jump tables, which Thumb-2 code keeps inline),
and ``.bss`` (RAM). Pointers in vtables are 8 bytes here and 4 on a Cortex-M, so the figure
errs on the safe side here too.

What the numbers mean on a microcontroller: they are x86-64 bytes. Thumb-2 (all Cortex-M
cores) encodes the same code in fewer bytes than x86-64 (Weaver and McKee, "Code Density
Concerns for New Architectures", ICCD 2009, Fig. 1: Thumb-2 among the densest ISAs, x86-64
markedly larger), so the figure errs on the safe side for a gate; CMSIS-NN's optimised
kernels, which a release build may use instead of the reference kernels measured here,
differ in size. Kernels are summed per model, so code two kernels share is counted once
per kernel: also on the safe side.

The table ships as ``kernel_flash.json`` (the gate must not need binutils at run time);
``python -m components.mcu_size_gate.kernel_flash --write`` regenerates it from the
installed wheel, and a test checks the shipped table against a fresh measurement.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import os
import re
import subprocess
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

TABLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_flash.json")

RUNTIME_ROOTS = (
    "MicroInterpreter::MicroInterpreter(",
    "MicroInterpreter::~MicroInterpreter(",
    "MicroInterpreter::AllocateTensors(",
    "MicroInterpreter::Invoke(",
    "MicroInterpreter::input(",
    "MicroInterpreter::output(",
)
_REGISTER = re.compile(r"^tflite::(?:micro::)?Register_([A-Z0-9_]+)\(\)$")
_NM_LINE = re.compile(r"^([0-9a-f]+) ([0-9a-f]+) ([A-Za-z]) (.+)$")
_FUNCTION_HEADER = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_REFERENCE = re.compile(r"(?:call|jmp|j[a-z]+)\s+([0-9a-f]+) <|# ([0-9a-f]+) <")
_COMPRESSION_ONLY = re.compile(r"[Dd]ecompress|[Cc]ompression")
_SECTION = re.compile(r"^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)")
_FLASH_DATA_SECTIONS = (".rodata", ".data.rel.ro", ".data")
_RELATIVE_RELOC = re.compile(r"^([0-9a-f]+)\s+[0-9a-f]+\s+R_X86_64_(?:RELATIVE|64)\s+(?:[0-9a-f]+\s+\S+\s*\+\s*)?([0-9a-f]+)")


class KernelTableError(RuntimeError):
    """The kernel flash table is missing an op, or cannot be measured."""


@dataclasses.dataclass(frozen=True)
class FlashTable:
    """Runtime and per-kernel bytes (code, and read-only data apart), and where they were measured."""

    runtime_bytes: int
    kernel_bytes: Dict[str, int]
    source: str
    tflite_micro_version: str
    compression_bytes: int = 0
    runtime_rodata_bytes: int = 0
    kernel_rodata_bytes: Dict[str, int] = dataclasses.field(default_factory=dict)

    def _kernels(self, ops: Iterable[str]) -> List[str]:
        kernels = sorted(set(ops))
        for op in kernels:
            if op not in self.kernel_bytes:
                raise KernelTableError(
                    f"No flash figure for TFLite Micro kernel {op} in {TABLE_FILE}; regenerate it with "
                    "`python -m components.mcu_size_gate.kernel_flash --write`.")
        return kernels

    def model_flash(self, ops: Iterable[str]) -> Tuple[int, Dict[str, int]]:
        """Runtime plus the kernels of ``ops``, code and read-only data; the per-kernel split for the report.

        Raises:
            KernelTableError: when an op has no measured kernel.
        """
        per_kernel = {op: self.kernel_bytes[op] + self.kernel_rodata_bytes.get(op, 0) for op in self._kernels(ops)}
        return self.runtime_bytes + self.runtime_rodata_bytes + sum(per_kernel.values()), per_kernel

    def model_rodata(self, ops: Iterable[str]) -> int:
        """The read-only data part of ``model_flash(ops)``."""
        return self.runtime_rodata_bytes + sum(self.kernel_rodata_bytes.get(op, 0) for op in self._kernels(ops))


def load_table(path: str = TABLE_FILE) -> FlashTable:
    """The shipped table."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    return FlashTable(raw["runtime_bytes"], dict(raw["kernel_bytes"]), raw["source"], raw["tflite_micro_version"],
                      raw.get("compression_bytes", 0), raw.get("runtime_rodata_bytes", 0),
                      dict(raw.get("kernel_rodata_bytes", {})))


@dataclasses.dataclass
class _Binary:
    starts: List[int]
    ends: List[int]
    names: List[str]
    is_code: List[bool]
    edges: Dict[int, Set[int]]
    in_flash_data: List[bool] = dataclasses.field(default_factory=list)

    def symbol_at(self, address: int) -> Optional[int]:
        i = bisect.bisect_right(self.starts, address) - 1
        return i if i >= 0 and address < self.ends[i] else None


def _run(args: Sequence[str]) -> str:
    try:
        return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise KernelTableError(f"Could not run {args[0]} (binutils) to measure TFLite Micro: {err}") from err


def _flash_data_ranges(path: str) -> List[Tuple[int, int]]:
    ranges = []
    for line in _run(["readelf", "-S", "-W", path]).splitlines():
        m = _SECTION.match(line)
        if m and m.group(1).startswith(_FLASH_DATA_SECTIONS):
            start = int(m.group(2), 16)
            ranges.append((start, start + int(m.group(3), 16)))
    return ranges


def _read_binary(path: str) -> _Binary:
    symbols = {}
    for line in _run(["nm", "-S", "-C", "--defined-only", path]).splitlines():
        m = _NM_LINE.match(line)
        if m and int(m.group(2), 16) > 0:
            start, size, kind, name = int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4)
            symbols.setdefault(start, (size, kind.lower() in "tw", name))
    starts = sorted(symbols)
    flash_data = _flash_data_ranges(path)
    binary = _Binary(starts, [s + symbols[s][0] for s in starts], [symbols[s][2] for s in starts],
                     [symbols[s][1] for s in starts], {},
                     [not symbols[s][1] and any(lo <= s < hi for lo, hi in flash_data) for s in starts])
    current = None
    for line in _run(["objdump", "-d", "--no-show-raw-insn", path]).splitlines():
        header = _FUNCTION_HEADER.match(line)
        if header:
            current = binary.symbol_at(int(header.group(1), 16))
            continue
        if current is None:
            continue
        for m in _REFERENCE.finditer(line):
            target = binary.symbol_at(int(m.group(1) or m.group(2), 16))
            if target is not None and target != current:
                binary.edges.setdefault(current, set()).add(target)
    for line in _run(["readelf", "-r", "-W", path]).splitlines():
        m = _RELATIVE_RELOC.match(line.strip())
        if m:
            holder, target = binary.symbol_at(int(m.group(1), 16)), binary.symbol_at(int(m.group(2), 16))
            if holder is not None and target is not None and holder != target:
                binary.edges.setdefault(holder, set()).add(target)
    return binary


def _closure(binary: _Binary, roots: Iterable[int], stop: Set[int]) -> Set[int]:
    seen, todo = set(), list(roots)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(t for t in binary.edges.get(node, ()) if t not in seen and t not in stop)
    return seen


def _code_bytes(binary: _Binary, nodes: Iterable[int]) -> int:
    return sum(binary.ends[n] - binary.starts[n] for n in nodes if binary.is_code[n])


def _rodata_bytes(binary: _Binary, nodes: Iterable[int]) -> int:
    return sum(binary.ends[n] - binary.starts[n] for n in nodes if binary.in_flash_data[n])


def measure(runtime_library: str, version: str) -> FlashTable:
    """Measures the runtime and every kernel in a compiled TFLite Micro library (see the module doc)."""
    binary = _read_binary(runtime_library)
    registers = {}
    for index, name in enumerate(binary.names):
        m = _REGISTER.match(name)
        if m and binary.is_code[index]:
            registers[m.group(1)] = index
    roots = [i for i, name in enumerate(binary.names)
             if binary.is_code[i] and any(root in name for root in RUNTIME_ROOTS)]
    if not roots or not registers:
        raise KernelTableError(f"{runtime_library} has no MicroInterpreter or Register_* symbols to measure.")
    compression = {i for i, name in enumerate(binary.names) if _COMPRESSION_ONLY.search(name)}
    runtime = _closure(binary, roots, stop=set(registers.values()) | compression)
    with_compression = _closure(binary, roots, stop=set(registers.values()))
    excluded = runtime | compression
    reached = {op: _closure(binary, [index], stop=excluded) - excluded for op, index in sorted(registers.items())}
    return FlashTable(_code_bytes(binary, runtime), {op: _code_bytes(binary, nodes) for op, nodes in reached.items()},
                      f"code and named read-only data reachable in tflite-micro {version} _runtime.so (x86-64), "
                      "measured by components/mcu_size_gate/kernel_flash.py", version,
                      compression_bytes=_code_bytes(binary, with_compression - runtime),
                      runtime_rodata_bytes=_rodata_bytes(binary, runtime),
                      kernel_rodata_bytes={op: _rodata_bytes(binary, nodes) for op, nodes in reached.items()})


def installed_runtime_library() -> Tuple[str, str]:
    """The installed tflite-micro wheel's compiled runtime and the wheel's version."""
    from importlib import metadata

    import tflite_micro

    package = os.path.dirname(os.path.abspath(tflite_micro.__file__))
    for root, _, files in os.walk(package):
        for name in files:
            if name.startswith("_runtime") and name.endswith(".so"):
                return os.path.join(root, name), metadata.version("tflite-micro")
    raise KernelTableError(f"No compiled TFLite Micro runtime (_runtime*.so) under {package}.")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {TABLE_FILE}")
    args = parser.parse_args(argv)
    table = measure(*installed_runtime_library())
    text = json.dumps(dataclasses.asdict(table), indent=1, sort_keys=True) + "\n"
    if args.write:
        with open(TABLE_FILE, "w", encoding="utf-8") as f:
            f.write(text)
    print(f"runtime {table.runtime_bytes} B code + {table.runtime_rodata_bytes} B read-only data "
          f"(+{table.compression_bytes} B model compression, not counted); " + ", ".join(
              f"{op} {size}+{table.kernel_rodata_bytes.get(op, 0)}"
              for op, size in sorted(table.kernel_bytes.items(), key=lambda kv: -kv[1])[:12]))


if __name__ == "__main__":
    main()
