"""Reading TFLite Micro MicroProfiler logs into per-op-class cycles for a board profile."""

import os

import jsonschema
import pytest

from components.mcu_size_gate import devices, measure, profile_log
from components.tflm import model as tflm_model

MLPERF = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "components", "mcu_size_gate",
                      "calibration", "mlperf_tiny")
COSTS = {"conv_2d": 6.0, "depthwise_conv_2d": 8.0, "fully_connected": 4.0, "pooling": 3.0, "softmax": 50.0,
         "elementwise": 2.0, "data_movement": 1.0, "conv_2d_1x1": 5.0}


def _log_csv(model, invokes=2, noise=0.0, serial_noise=True):
    """What LogCsv prints for ``invokes`` invokes, with ticks = cost x work (x (1 +/- noise))."""
    work = measure.op_work(tflm_model.operators(model))
    lines = ["I (1234) boot: starting"] if serial_noise else []
    for invoke in range(invokes):
        lines.append('"Event","Tag","Ticks"')
        seen = {}
        for i, item in enumerate(work):
            seen[item.op_class] = seen.get(item.op_class, 0) + 1
            factor = 1 + (noise if seen[item.op_class] % 2 else -noise)  # alternate within each class
            lines.append(f"{i},{item.op},{round(COSTS[item.op_class] * item.work * factor)}")
        lines.append(f"inference {invoke} done")
    return "\n".join(lines) + "\n"


def test_costs_per_class_are_read_back_from_a_profile(tiny_int8_model):
    result = profile_log.calibrate(_log_csv(tiny_int8_model), tiny_int8_model, "board.log", "model.tflite")
    used = {w.op_class for w in measure.op_work(tflm_model.operators(tiny_int8_model))}
    assert set(result.cycles_per_unit) == used
    for op_class in used:
        assert result.cycles_per_unit[op_class] == pytest.approx(COSTS[op_class], rel=0.02)
    assert result.invokes == 2 and result.spread < 0.02
    block = result.profile_block()
    assert "board.log" in block["source"] and "model.tflite" in block["source"]
    # the block is what the board profile schema accepts
    profile = {"name": "b", "display_name": "B", "mcu": "X", "core": "cortex-m4f", "clock_mhz": 64, "flash_kib": 1024,
               "ram_kib": 256, "reserved": {"flash_kib": 1, "ram_kib": 1}, "sources": ["a test board"],
               "measured_op_cycles": block}
    jsonschema.validate(profile, devices._schema())


def test_spread_grows_with_how_far_operators_of_one_class_stray():
    # the MLPerf KWS model has four depthwise and five other convolutions: room to disagree within a class
    with open(os.path.join(MLPERF, "kws_ref_model.tflite"), "rb") as f:
        model = f.read()
    exact = profile_log.calibrate(_log_csv(model, invokes=1), model)
    noisy = profile_log.calibrate(_log_csv(model, invokes=1, noise=0.2), model)
    assert exact.spread < 0.001 and 0.1 < noisy.spread < 0.25


def test_log_format_lines_and_a_timer_other_than_the_cycle_counter(tiny_int8_model):
    work = measure.op_work(tflm_model.operators(tiny_int8_model))
    # Log(): "<op> took <ticks> ticks (<ms> ms)." with a 1 MHz timer on a 64 MHz core
    text = "\n".join(f"{w.op} took {round(COSTS[w.op_class] * w.work / 64)} ticks (0 ms)." for w in work)
    result = profile_log.calibrate(text, tiny_int8_model, ticks_per_second=1e6, clock_mhz=64)
    assert result.cycles_per_unit["conv_2d"] == pytest.approx(COSTS["conv_2d"], rel=0.05)
    with pytest.raises(profile_log.ProfileLogError, match="both the tick rate"):
        profile_log.calibrate(text, tiny_int8_model, ticks_per_second=1e6)


def test_a_log_of_another_model_or_a_cut_off_log_is_refused(tiny_int8_model):
    text = _log_csv(tiny_int8_model, invokes=1)
    swapped = text.replace(",CONV_2D,", ",DEPTHWISE_CONV_2D,", 1)
    with pytest.raises(profile_log.ProfileLogError, match=r"line \d+: event (\d+) of invoke 1 is DEPTHWISE_CONV_2D, "
                                                          r"but operator \1 of model.tflite is CONV_2D"):
        profile_log.calibrate(swapped, tiny_int8_model)
    cut = "\n".join(text.splitlines()[:-3])
    with pytest.raises(profile_log.ProfileLogError, match="operators per invoke"):
        profile_log.calibrate(cut, tiny_int8_model)
    with pytest.raises(profile_log.ProfileLogError, match="holds no MicroProfiler events"):
        profile_log.calibrate("just a boot log\n", tiny_int8_model)
