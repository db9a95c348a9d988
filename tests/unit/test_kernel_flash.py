"""The TFLM runtime/kernel flash table: reproducible from the installed wheel, complete, summed right."""

import dataclasses

import pytest

from components.mcu_size_gate import kernel_flash
from components.tflm import ops as tflm_ops
from tests.support.tools import require_tool

BINUTILS = ("objdump", "nm", "readelf")


BINUTILS_HOW = ("scripts/devenv.sh's Debian 13 root has them (binutils comes with its g++); a native .venv host gets "
                "them from apt (package binutils)")


def _binutils_or_skip():
    """binutils measure the compiled TFLM; a missing one skips here, or fails under CI (tests/support/tools.py)."""
    for tool in BINUTILS:
        require_tool(tool, BINUTILS_HOW)


def test_shipped_table_is_what_the_installed_tflite_micro_measures():
    _binutils_or_skip()
    fresh = kernel_flash.measure(*kernel_flash.installed_runtime_library())
    assert dataclasses.asdict(fresh) == dataclasses.asdict(kernel_flash.load_table()), (
        "regenerate with `python -m components.mcu_size_gate.kernel_flash --write`")


def test_every_op_the_resolver_can_add_has_a_kernel_size():
    table = kernel_flash.load_table()
    assert set(tflm_ops.RESOLVER_METHODS) <= set(table.kernel_bytes)
    # The interpreter core is small but real; heavy kernels are bigger than trivial ones.
    assert 8_000 < table.runtime_bytes < 100_000
    assert table.kernel_bytes["CONV_2D"] > table.kernel_bytes["RESHAPE"] > 0
    # Model compression is compiled into the wheel but kept out of the runtime figure.
    assert table.compression_bytes > 0
    # Read-only data is counted: the runtime's tables (op names, vtables) and the kernels' lookup tables.
    assert table.runtime_rodata_bytes > 1_000
    assert table.kernel_rodata_bytes["LOGISTIC"] >= 512  # the 256-entry uint16 sigmoid table


def test_model_flash_adds_the_kernels_of_the_ops_once_each_with_their_read_only_data():
    table = kernel_flash.FlashTable(1000, {"CONV_2D": 300, "SOFTMAX": 50, "RESHAPE": 7}, "test", "0",
                                    runtime_rodata_bytes=40, kernel_rodata_bytes={"SOFTMAX": 512})
    total, per_kernel = table.model_flash(["CONV_2D", "SOFTMAX", "CONV_2D"])
    assert total == 1000 + 40 + 300 + 50 + 512 and per_kernel == {"CONV_2D": 300, "SOFTMAX": 562}
    assert table.model_rodata(["SOFTMAX", "CONV_2D"]) == 40 + 512
    with pytest.raises(kernel_flash.KernelTableError, match="LSTM.*--write"):
        table.model_flash(["LSTM"])
