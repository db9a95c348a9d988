"""``tinyml-tfx devices``: the board catalogue, a model measured on TFLite Micro against it, and
per-op cycles read from a profile taken on a board."""

from __future__ import annotations

import json
import os
import shutil
from typing import Optional

import click

from pipeline.ui.cli_common import EXIT_FAILED, EXIT_USAGE, fail

_boards_dir_option = click.option(
    "--boards-dir", multiple=True, type=click.Path(file_okay=False, exists=True),
    help="A folder of extra board profiles (<name>.yaml); repeatable.")


def _console():
    from rich.console import Console

    # Wide enough for the tables when the output is a file or a pipe (rich's default there is 80).
    return Console(width=max(shutil.get_terminal_size((160, 24)).columns, 160), highlight=False)


def _catalogue(boards_dir):
    from components.mcu_size_gate import devices as catalogue_lib

    try:
        return catalogue_lib.load_catalogue(boards_dir)
    except catalogue_lib.DeviceProfileError as err:
        fail(str(err), EXIT_USAGE)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        fail(f"Cannot read {path}: {err.strerror}. Pass a readable file.", EXIT_USAGE)


@click.group()
def devices() -> None:
    """The board catalogue: list boards, check a .tflite model against them, read on-board profiles."""


@devices.command("list")
@_boards_dir_option
def devices_list(boards_dir) -> None:
    """List the known boards with their flash, RAM, what the firmware reserves, and what their
    latency estimates rest on."""
    from rich.table import Table

    from components.mcu_size_gate import calibration

    catalogue = _catalogue(boards_dir)
    try:
        cores = calibration.build().cores
    except calibration.CalibrationError as err:
        fail(str(err), EXIT_FAILED)
    table = Table("board", "core", "MHz", "flash KiB", "RAM KiB", "reserved flash / RAM KiB", "latency calibration",
                  box=None)
    for p in catalogue.values():
        basis = ("measured on the board" if p.measured_op_cycles
                 else cores[p.core].basis if p.core in cores else "not calibrated")
        table.add_row(p.name, p.core, f"{p.clock_mhz:g}", str(p.flash_bytes // 1024), str(p.ram_bytes // 1024),
                      f"{p.reserved_flash_bytes // 1024} / {p.reserved_ram_bytes // 1024}", basis)
    _console().print(table)


@devices.command("check")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--board", "boards", multiple=True, help="Board name(s); default: every known board.")
@_boards_dir_option
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Also judge the estimated time per inference (the upper end of its band) against this limit.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole analysis as JSON instead of tables.")
def devices_check(model_file: str, boards, boards_dir, max_latency_ms, as_json: bool) -> None:
    """Measure a .tflite model on TFLite Micro and judge it against boards: RAM, flash, latency.

    RAM is the measured tensor arena plus the scratch buffers the board's CMSIS-NN kernels
    request, plus the board's reserve; flash is the model plus the TFLM runtime and the
    kernels of its ops (code and read-only data) plus the reserve; latency is estimated per
    op class with a cost model calibrated on published TFLite Micro results, with its band.
    """
    from components.mcu_size_gate import calibration, devices as catalogue_lib, gate
    from components.tflm import TflmError

    catalogue = _catalogue(boards_dir)
    try:
        targets = [catalogue_lib.get_profile(b, catalogue) for b in boards] or list(catalogue.values())
    except catalogue_lib.DeviceProfileError as err:
        fail(str(err), EXIT_USAGE)
    model = _read(model_file)
    try:
        analysis = gate.analyse(model, targets, max_latency_ms=max_latency_ms)
    except TflmError as err:
        fail(f"Could not measure {model_file} on TFLite Micro: {err}", EXIT_USAGE)
    except calibration.CalibrationError as err:
        fail(str(err), EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(dict(analysis.to_json(targets[0].name), model_file=os.path.abspath(model_file)),
                              indent=2))
        return
    _print_analysis(model_file, analysis)


def _print_analysis(model_file: str, analysis) -> None:
    from rich.table import Table

    console = _console()
    arena = analysis.arena
    console.print(f"{model_file}: {analysis.model_bytes} bytes, {analysis.macs:,} MACs per inference, ops "
                  + ", ".join(f"{o['name']} v{o['version']}" for o in analysis.ops))
    console.print(f"Tensor arena: {arena.smallest_bytes} bytes measured with TFLM's reference kernels (smallest "
                  f"that runs; recording allocator {arena.recorded_total}: head {arena.recorded_head}, tail "
                  f"{arena.recorded_tail}); CMSIS-NN scratch added: "
                  + ", ".join(f"{variant} +{a.added_bytes}" for variant, a in analysis.scratch.items()))
    console.print(f"Code: TFLM runtime {analysis.runtime_bytes} B + kernels "
                  + ", ".join(f"{op} {size}" for op, size in analysis.kernel_bytes.items())
                  + f" B, {analysis.rodata_bytes} B of it read-only data ({analysis.flash_source})")
    limit = analysis.max_latency_ms
    table = Table("board", "core, MHz", "RAM KiB used / total", "flash KiB used / total",
                  "latency ms, estimated (band)", "inf/s", "basis", "verdict", box=None)
    for v in analysis.verdicts:
        latency_text = ("not calibrated" if v.latency_ms is None
                        else f"{v.latency_ms:.1f} ({v.latency_low_ms:.1f}-{v.latency_high_ms:.1f})")
        rate = "-" if v.inferences_per_second is None else f"{v.inferences_per_second:.1f}"
        verdict = "fits" if v.fits else "NO: " + ", ".join(r.split(":")[0] for r in v.reasons)
        table.add_row(v.board, f"{v.core}, {v.clock_mhz:g}", f"{v.ram_used / 1024:.1f} / {v.ram_total / 1024:.0f}",
                      f"{v.flash_used / 1024:.1f} / {v.flash_total / 1024:.0f}", latency_text, rate, v.latency_basis,
                      verdict)
    console.print(table)
    console.print(f"Latency judged at the upper end of its band{f' against {limit:g} ms' if limit else ''}; "
                  "RAM includes each board's CMSIS-NN scratch and reserve, flash its reserve.")
    reasons = [(v.board, r) for v in analysis.verdicts for r in v.reasons]
    if reasons:
        console.print("Why not:")
        for board, reason in reasons:
            console.print(f"  {board}: {reason}", soft_wrap=True)
    console.print("Latency calibration (estimates, not measurements):")
    for v in analysis.verdicts:
        console.print(f"  {v.board}: {v.engine}; {v.latency_calibration}", soft_wrap=True)


@devices.command("calibrate")
@click.argument("log_file", metavar="PROFILE.log", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "model_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The .tflite model the board ran while it was profiled.")
@click.option("--board", default=None, help="The board that was profiled (its clock converts ticks when "
              "--ticks-per-second is given).")
@_boards_dir_option
@click.option("--ticks-per-second", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The profiler's tick rate, when the port's timer is not the CPU cycle counter.")
@click.option("--clock-mhz", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The core clock while profiling (default: the --board profile's).")
@click.option("--engine", default="TFLite Micro + CMSIS-NN", show_default=True, help="What the firmware ran.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def devices_calibrate(log_file: str, model_file: str, board: Optional[str], boards_dir, ticks_per_second,
                      clock_mhz, engine: str, as_json: bool) -> None:
    """Read TFLite Micro MicroProfiler output (PROFILE.log) taken on a board and print the
    ``measured_op_cycles`` block for its profile: cycles per MAC or element per op class.

    Firmware: pass a tflite::MicroProfiler to the MicroInterpreter and call profiler.LogCsv()
    after Invoke() (components/mcu_size_gate/profile_log.py). Put the printed block in the
    board's <name>.yaml; the size gate then uses it instead of the published calibration.
    """
    import yaml

    from components.mcu_size_gate import devices as catalogue_lib, profile_log
    from components.tflm import TflmError

    if ticks_per_second is not None and clock_mhz is None:
        if not board:
            fail("--ticks-per-second needs the core clock: pass --clock-mhz or --board.", EXIT_USAGE)
        try:
            clock_mhz = catalogue_lib.get_profile(board, _catalogue(boards_dir)).clock_mhz
        except catalogue_lib.DeviceProfileError as err:
            fail(str(err), EXIT_USAGE)
    try:
        text = _read(log_file).decode("utf-8", errors="replace")
        result = profile_log.calibrate(text, _read(model_file), log_file, model_file, ticks_per_second,
                                       clock_mhz if ticks_per_second is not None else None, engine)
    except (profile_log.ProfileLogError, TflmError) as err:
        fail(str(err), EXIT_USAGE)
    block = {"measured_op_cycles": result.profile_block()}
    if as_json:
        click.echo(json.dumps(dict(block, invokes=result.invokes, cycles_per_invoke=round(result.total_cycles)),
                              indent=2))
        return
    from rich.table import Table

    console = _console()
    table = Table("op class", "operators", "work", "cycles per unit", box=None)
    for op_class, per_unit in result.cycles_per_unit.items():
        members = [p for p in result.ops if p.op_class == op_class and p.invoke == 1]
        table.add_row(op_class, str(len(members)), f"{sum(p.work for p in members):,}", f"{per_unit:.3f}")
    console.print(table)
    console.print(f"{result.invokes} invoke(s), {result.total_cycles:,.0f} cycles each; spread "
                  f"{result.spread:.1%}. Add this to the board's profile"
                  + (f" ({board}.yaml)" if board else "") + ":")
    click.echo(yaml.safe_dump(block, sort_keys=False))
