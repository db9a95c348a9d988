"""The TFLM runtime/kernel flash table: reproducible from the installed wheel, complete, summed right."""

import dataclasses
import shutil

import pytest

from components.mcu_size_gate import kernel_flash
from components.tflite_quantizer import codegen


@pytest.mark.skipif(shutil.which("objdump") is None, reason="binutils measure the compiled TFLM")
def test_shipped_table_is_what_the_installed_tflite_micro_measures():
    fresh = kernel_flash.measure(*kernel_flash.installed_runtime_library())
    assert dataclasses.asdict(fresh) == dataclasses.asdict(kernel_flash.load_table()), (
        "regenerate with `python -m components.mcu_size_gate.kernel_flash --write`")


def test_every_op_the_resolver_can_add_has_a_kernel_size():
    table = kernel_flash.load_table()
    assert set(codegen.RESOLVER_METHODS) <= set(table.kernel_bytes)
    # The interpreter core is small but real; heavy kernels are bigger than trivial ones.
    assert 8_000 < table.runtime_bytes < 100_000
    assert table.kernel_bytes["CONV_2D"] > table.kernel_bytes["RESHAPE"] > 0
    # Model compression is compiled into the wheel but kept out of the runtime figure.
    assert table.compression_bytes > 0


def test_model_flash_adds_the_kernels_of_the_ops_once_each():
    table = kernel_flash.FlashTable(1000, {"CONV_2D": 300, "SOFTMAX": 50, "RESHAPE": 7}, "test", "0")
    total, per_kernel = table.model_flash(["CONV_2D", "SOFTMAX", "CONV_2D"])
    assert total == 1350 and per_kernel == {"CONV_2D": 300, "SOFTMAX": 50}
    with pytest.raises(kernel_flash.KernelTableError, match="LSTM.*--write"):
        table.model_flash(["LSTM"])
