"""The board catalogue: device profiles as YAML files, validated against a JSON Schema.

The shipped boards live in ``components/mcu_size_gate/devices/``; users add a board by
adding a ``<name>.yaml`` file to a folder they pass in (see ``load_catalogue``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Iterable, Mapping, Optional, Tuple

import jsonschema
import yaml

import schemas

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "devices")
SCHEMA_FILE = "device_profile.schema.json"
KIB = 1024


class DeviceProfileError(ValueError):
    """A malformed or unknown device profile; the message names the file, the field and the reason."""


@dataclasses.dataclass(frozen=True)
class MeasuredOpCycles:
    """Cycles per unit of work per op class, measured on the board (``tinyml-tfx devices calibrate``)."""

    engine: str
    source: str
    cycles_per_unit: Dict[str, float]
    spread: float


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    """One board: its memory and clock, and what its firmware keeps for itself."""

    name: str
    display_name: str
    mcu: str
    core: str
    clock_mhz: float
    flash_bytes: int
    ram_bytes: int
    reserved_flash_bytes: int
    reserved_ram_bytes: int
    arena_region_bytes: Optional[int]
    sources: Tuple[str, ...]
    path: str
    active_current_ma: Optional[float] = None
    supply_v: Optional[float] = None
    measured_op_cycles: Optional[MeasuredOpCycles] = None

    @property
    def flash_available_bytes(self) -> int:
        return self.flash_bytes - self.reserved_flash_bytes

    @property
    def ram_available_bytes(self) -> int:
        return self.ram_bytes - self.reserved_ram_bytes


def _schema() -> dict:
    with open(schemas.SCHEMA_DIR / SCHEMA_FILE, encoding="utf-8") as f:
        return json.load(f)


def load_profile(path: str) -> DeviceProfile:
    """Reads and validates one profile file.

    Raises:
        DeviceProfileError: naming the file and the field.
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise DeviceProfileError(f"Device profile {path} is not valid YAML: {err}. Fix the syntax.") from err
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        field = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise DeviceProfileError(
            f"Device profile {path}: field '{field}' is invalid: {first.message}. See "
            f"schemas/{SCHEMA_FILE} for what each field means.")
    expected = os.path.splitext(os.path.basename(path))[0]
    if raw["name"] != expected:
        raise DeviceProfileError(f"Device profile {path}: field 'name' is '{raw['name']}' but the file is "
                                 f"named {expected}.yaml; make them equal.")
    reserved = raw["reserved"]
    if reserved["flash_kib"] >= raw["flash_kib"] or reserved["ram_kib"] >= raw["ram_kib"]:
        raise DeviceProfileError(f"Device profile {path}: field 'reserved' keeps all of the board's flash or "
                                 "RAM for the firmware; nothing is left for a model.")
    return DeviceProfile(
        name=raw["name"], display_name=raw["display_name"], mcu=raw["mcu"], core=raw["core"],
        clock_mhz=float(raw["clock_mhz"]), flash_bytes=raw["flash_kib"] * KIB, ram_bytes=raw["ram_kib"] * KIB,
        reserved_flash_bytes=reserved["flash_kib"] * KIB, reserved_ram_bytes=reserved["ram_kib"] * KIB,
        arena_region_bytes=raw["arena_region_kib"] * KIB if "arena_region_kib" in raw else None,
        sources=tuple(raw["sources"]), path=os.path.abspath(path),
        active_current_ma=raw.get("active_current_ma"), supply_v=raw.get("supply_v"),
        measured_op_cycles=MeasuredOpCycles(**raw["measured_op_cycles"]) if "measured_op_cycles" in raw else None)


def load_catalogue(extra_dirs: Iterable[str] = ()) -> Dict[str, DeviceProfile]:
    """The shipped boards plus every ``*.yaml`` in ``extra_dirs`` (a later file may not reuse a name)."""
    catalogue: Dict[str, DeviceProfile] = {}
    for directory in (SHIPPED_DIR, *extra_dirs):
        for name in sorted(os.listdir(directory)):
            if name.endswith((".yaml", ".yml")):
                profile = load_profile(os.path.join(directory, name))
                if profile.name in catalogue:
                    raise DeviceProfileError(f"Device profile {profile.path} reuses the name '{profile.name}' "
                                             f"of {catalogue[profile.name].path}; rename one of them.")
                catalogue[profile.name] = profile
    return catalogue


def get_profile(name: str, catalogue: Dict[str, DeviceProfile]) -> DeviceProfile:
    """The profile called ``name``, or an error that lists the known boards."""
    if name not in catalogue:
        raise DeviceProfileError(f"Unknown board '{name}'. Known boards: {', '.join(sorted(catalogue))}. Add a "
                                 f"profile file <name>.yaml (see schemas/{SCHEMA_FILE}) for another board.")
    return catalogue[name]


@dataclasses.dataclass(frozen=True)
class Budget:
    """A model's RAM and flash against one board: what it needs (with the reserve) and what there is."""

    board: DeviceProfile
    ram_used: int
    flash_used: int
    arena_fits_region: bool
    code_bytes: int = 0
    arena_bytes: int = 0

    @property
    def fits(self) -> bool:
        return (self.ram_used <= self.board.ram_bytes and self.flash_used <= self.board.flash_bytes
                and self.arena_fits_region)


def budgets(model_bytes: int, arena_bytes: int, profiles: Iterable[DeviceProfile],
            code_bytes: int = 0, arena_by_board: Optional[Mapping[str, int]] = None) -> Tuple[Budget, ...]:
    """Per board: arena + RAM reserve against RAM (and the arena against the largest RAM
    bank); model + TFLM runtime and kernels (``code_bytes``, see ``kernel_flash``) + flash
    reserve against flash. ``arena_by_board`` overrides ``arena_bytes`` for the boards it
    names (e.g. with the scratch buffers of the kernels that board's build runs)."""
    result = []
    for p in profiles:
        arena = (arena_by_board or {}).get(p.name, arena_bytes)
        result.append(Budget(board=p, ram_used=arena + p.reserved_ram_bytes,
                             flash_used=model_bytes + code_bytes + p.reserved_flash_bytes,
                             arena_fits_region=p.arena_region_bytes is None or arena <= p.arena_region_bytes,
                             code_bytes=code_bytes, arena_bytes=arena))
    return tuple(result)
