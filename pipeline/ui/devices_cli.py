"""``tinyml-tfx devices``: the board catalogue, and a model measured on TFLite Micro against it."""

from __future__ import annotations


import click

from pipeline.ui.cli_common import (EXIT_USAGE, fail)

@click.group()
def devices() -> None:
    """The board catalogue: list boards, check a .tflite model against them."""


@devices.command("list")
@click.option("--boards-dir", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A folder of extra board profiles (<name>.yaml); repeatable.")
def devices_list(boards_dir) -> None:
    """List the known boards with their flash, RAM and what the firmware reserves."""
    from components.mcu_size_gate import devices as catalogue_lib

    try:
        catalogue = catalogue_lib.load_catalogue(boards_dir)
    except catalogue_lib.DeviceProfileError as err:
        fail(str(err), EXIT_USAGE)
    click.echo(f"{'board':<18} {'core':<14} {'MHz':>5} {'flash KiB':>10} {'RAM KiB':>8} {'reserved flash/RAM KiB':>23}")
    for p in catalogue.values():
        click.echo(f"{p.name:<18} {p.core:<14} {p.clock_mhz:>5.0f} {p.flash_bytes // 1024:>10} "
                   f"{p.ram_bytes // 1024:>8} {p.reserved_flash_bytes // 1024:>11}/{p.reserved_ram_bytes // 1024:<11}")


@devices.command("check")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--board", "boards", multiple=True, help="Board name(s); default: every known board.")
@click.option("--boards-dir", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A folder of extra board profiles (<name>.yaml); repeatable.")
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Also judge the estimated time per inference against this limit.")
def devices_check(model_file: str, boards, boards_dir, max_latency_ms) -> None:
    """Measure a .tflite model on TFLite Micro and judge it against boards: RAM, flash, latency.

    RAM is the measured tensor arena plus each board's reserve; flash is the model plus the
    TFLM runtime and the kernels of its ops plus the reserve; latency is estimated from the
    model's MACs with a cost model calibrated on published board measurements.
    """
    from components.mcu_size_gate import devices as catalogue_lib
    from components.mcu_size_gate import gate
    from components.tflite_quantizer import codegen, quantize

    try:
        catalogue = catalogue_lib.load_catalogue(boards_dir)
        targets = [catalogue_lib.get_profile(b, catalogue) for b in boards] or list(catalogue.values())
        with open(model_file, "rb") as f:
            model = f.read()
        analysis = gate.analyse(model, targets, max_latency_ms=max_latency_ms)
    except catalogue_lib.DeviceProfileError as err:
        fail(str(err), EXIT_USAGE)
    except (quantize.QuantizationError, codegen.UnsupportedOpError, ValueError, RuntimeError) as err:
        fail(f"Could not measure {model_file} on TFLite Micro: {err}", EXIT_USAGE)
    arena = analysis.arena
    click.echo(f"{model_file}: {analysis.model_bytes} bytes, {analysis.macs:,} MACs per inference, ops "
               + ", ".join(f"{o['name']} v{o['version']}" for o in analysis.ops))
    click.echo(f"Tensor arena: {arena.smallest_bytes} bytes (smallest that runs; recording allocator "
               f"{arena.recorded_total}: head {arena.recorded_head}, tail {arena.recorded_tail}; {arena.source})")
    click.echo(f"Code: TFLM runtime {analysis.runtime_bytes} B + kernels "
               + ", ".join(f"{op} {size}" for op, size in analysis.kernel_bytes.items())
               + f" B ({analysis.flash_source})")
    click.echo(f"  {'board':<18} {'RAM KiB':>17} {'flash KiB':>19} {'latency ms':>11} {'inf/s':>7}  verdict")
    for v in analysis.verdicts:
        latency_ms = "-" if v.latency_ms is None else f"{v.latency_ms:.1f}"
        rate = "-" if v.inferences_per_second is None else f"{v.inferences_per_second:.1f}"
        click.echo(f"  {v.board:<18} {v.ram_used / 1024:7.1f} / {v.ram_total / 1024:7.1f} "
                   f"{v.flash_used / 1024:8.1f} / {v.flash_total / 1024:8.1f} {latency_ms:>11} {rate:>7}  "
                   + ("fits" if v.fits else "NO: " + "; ".join(v.reasons)))


