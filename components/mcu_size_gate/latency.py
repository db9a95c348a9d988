"""Latency and energy per inference: the model's MACs through a per-core cost model.

The cost model is calibrated on published, reproducible measurements of one network on
real boards: the MLPerf Tiny keyword-spotting DS-CNN (mlcommons/tiny,
benchmark/training/keyword_spotting/keras_model.py, ``ds_cnn``: 49x10 input, a 10x4
stride-2 convolution to 64 channels, four depthwise-separable blocks, average pool, a
12-way dense layer). Its MAC-bearing ops hold ``MLPERF_KWS_DSCNN_MACS`` multiply-
accumulates (counted by ``measure.count_macs`` on that architecture; a test rebuilds it).

Cycles per MAC on a Cortex-M4 (NUCLEO-L4R5ZI, STM32L4R5 at 120 MHz), whole network:

* TFLite Micro reference kernels: 5.497 inferences/s -> 181.9 ms (MLPerf Tiny v0.5,
  closed/reference, results/Nucleo-L4R5ZI/kws/performance/results.txt; system
  description: TFLM v2.3.1, no extra kernel libraries).
* CMSIS-NN kernels: 10.019 inferences/s -> 99.8 ms (MLPerf Tiny v1.0, closed/OctoML,
  results/microtvm_cmsis_nn/NUCLEO_L4R5ZI/kws/performance/results.txt; microTVM calling
  CMSIS-NN).

Relative cycles of the other cores come from one engine measured on several boards
(MLPerf Tiny v1.1, closed/bosch, HALE 1.0, kws/performance/results.txt): NUCLEO-G0B1RE
(Cortex-M0+, 64 MHz) 1.472 inf/s, NUCLEO-L4R5ZI (M4, 120 MHz) 15.954, NUCLEO-U575ZI
(M33, 160 MHz) 25.166, NUCLEO-H7A3ZI (M7, 280 MHz) 67.956; cycles per inference
relative to the M4 = (f_core / throughput_core) / (f_M4 / throughput_M4).

Cores without a published same-engine measurement take a named proxy core whose cycle
count is an upper bound, and the estimate says so (``calibration``). The figures are
network-level: one cycles-per-MAC value covers convolution, depthwise convolution and
dense layers and the ops between them. A board profile may carry its own measured
``cycles_per_mac`` (e.g. from TFLM's MicroProfiler on the device), which then wins.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Optional, Tuple

MLPERF_KWS_DSCNN_MACS = 2_656_768
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL")

_M4_HZ = 120e6
M4_CYCLES_PER_MAC = {
    "reference": _M4_HZ / 5.497 / MLPERF_KWS_DSCNN_MACS,
    "optimized": _M4_HZ / 10.019 / MLPERF_KWS_DSCNN_MACS,
}
_BOSCH_HALE = {"cortex-m0plus": (64e6, 1.472), "cortex-m4": (120e6, 15.954), "cortex-m33": (160e6, 25.166),
               "cortex-m7": (280e6, 67.956)}
CORE_FACTOR = {core: (hz / rate) / (_M4_HZ / 15.954) for core, (hz, rate) in _BOSCH_HALE.items()}
CORE_FACTOR["cortex-m4f"] = CORE_FACTOR["cortex-m4"]
# Proxies for cores with no same-engine measurement: a core at least as capable per cycle.
PROXY_CORE = {
    "cortex-m3": "cortex-m0plus",   # no DSP/SIMD instructions, like the M0+; the M3's extra pipeline is ignored
    "cortex-m55": "cortex-m33",     # Armv8.1-M: Helium (MVE) does int8 MACs at least as fast as the M33's DSP path
    "cortex-m85": "cortex-m33",
    "xtensa-lx6": "cortex-m0plus",  # no SIMD MAC instructions used by the reference kernels
    "xtensa-lx7": "cortex-m4",      # ESP32-S3's PIE SIMD is used by ESP-NN; taken as no faster than an M4 with DSP
    "riscv32": "cortex-m0plus",
}
SOURCES = (
    "MLPerf Tiny v0.5 closed/reference Nucleo-L4R5ZI kws (TFLM 2.3.1 reference kernels): 5.497 inf/s",
    "MLPerf Tiny v1.0 closed/OctoML microtvm_cmsis_nn NUCLEO_L4R5ZI kws (CMSIS-NN): 10.019 inf/s",
    "MLPerf Tiny v1.1 closed/bosch HALE kws: G0B1RE 1.472, L4R5ZI 15.954, U575ZI 25.166, H7A3ZI 67.956 inf/s",
)


@dataclasses.dataclass(frozen=True)
class LatencyEstimate:
    """One board's estimated time (and energy) per inference."""

    board: str
    kernels: str
    cycles_per_mac: float
    ms: float
    inferences_per_second: float
    calibration: str
    energy_uj: Optional[float] = None


def cycles_per_mac(core: str, kernels: str = "optimized") -> Tuple[float, str]:
    """Calibrated whole-network cycles per MAC for ``core``, and how it was calibrated."""
    if kernels not in M4_CYCLES_PER_MAC:
        raise ValueError(f"kernels must be one of {sorted(M4_CYCLES_PER_MAC)}, not '{kernels}'")
    if core in CORE_FACTOR:
        return M4_CYCLES_PER_MAC[kernels] * CORE_FACTOR[core], f"measured: {core} (MLPerf Tiny)"
    proxy = PROXY_CORE[core]
    return M4_CYCLES_PER_MAC[kernels] * CORE_FACTOR[proxy], f"proxy: {proxy} per-cycle figure (upper bound)"


def model_macs(macs_per_op: Iterable) -> int:
    """The MACs of the ops the cost model is calibrated on (``measure.OpMacs`` items)."""
    return sum(m.macs for m in macs_per_op if m.op in MAC_OPS)


def estimate(macs: int, board, kernels: str = "optimized") -> LatencyEstimate:
    """Latency of ``macs`` multiply-accumulates on ``board`` (a ``devices.DeviceProfile``)."""
    if board.cycles_per_mac is not None:
        per_mac, calibration = board.cycles_per_mac, f"board profile: {board.name}"
    else:
        per_mac, calibration = cycles_per_mac(board.core, kernels)
    seconds = macs * per_mac / (board.clock_mhz * 1e6)
    energy = None
    if board.active_current_ma is not None and board.supply_v is not None:
        energy = board.active_current_ma * 1e-3 * board.supply_v * seconds * 1e6
    return LatencyEstimate(board.name, kernels, round(per_mac, 3), round(seconds * 1e3, 2),
                           round(1.0 / seconds, 2) if seconds > 0 else float("inf"), calibration,
                           None if energy is None else round(energy, 1))


def table(macs: int, boards: Iterable, kernels: str = "optimized") -> Dict[str, LatencyEstimate]:
    """``estimate`` for every board, by name."""
    return {b.name: estimate(macs, b, kernels) for b in boards}
