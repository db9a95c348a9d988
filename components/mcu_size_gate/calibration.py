"""The latency model's calibration: published TFLite Micro results, a per-op-class cycle fit per core,
and how well the fit predicts a model it has not seen.

Data (``calibration/``):

* ``published.yaml``: MLPerf Tiny closed-division results, each with the results file and
  repository commit it comes from and the system description that names the engine.
* ``mlperf_tiny/*.tflite``: the four reference models the results ran (mlcommons/tiny,
  see its README for source and licence); their op shapes give each op class's work.

Model: on one core, an inference costs ``sum over op classes c of k_c * work_c`` cycles
(``measure.OP_CLASSES``: convolutions through im2col, 1x1 convolutions, depthwise
convolutions and fully connected layers per MAC; pooling, elementwise, softmax and
data-movement ops per element). The ``k_c`` are fitted by least squares on the core's
published results, in relative terms: the residuals are ``log(predicted / published)``.
Four networks cannot pin down eight coefficients, so each ``k_c`` is written
``exp(a + d_c)`` and the fit also minimises ``RIDGE * sum d_c**2``: a class the data do not
separate keeps the core's common cost per unit of work ``exp(a)``. ``RIDGE`` is small (the
fit reproduces its own calibration points within about 15 %); it only chooses among the
splits the data cannot tell apart. A per-operator fixed overhead is not fitted: ten to
thirty-one operators per network cannot separate it from the per-element costs.

Error: leave one model out. For every fitted core and every network, the coefficients are
fitted on the other three networks and the fourth is predicted; ``published / predicted``
over the four held-out networks gives the core's band (the estimate times the smallest
and largest ratio, always including the estimate itself).

Why three held-out predictions miss +/-30 % (AD on the M4 and the M85, IC on the M85), and
why no data that exists can fix it:

* Every MLPerf Tiny closed-division system runs the same four networks, so a held-out network
  must be withheld from every system that could inform its core (its figure on any board is
  exactly what a user's new network does not have). More MLPerf Tiny systems therefore add no
  information on a class only the held-out network uses. ``coverage`` shows it from the model
  files: fully connected layers are 100 % of AD's MACs (reduction depth 286) and 0.01-0.03 %
  of the other three's; 98 % of IC's MACs are im2col convolutions, all but its first layer
  reducing over 144-576 inputs (MAC-weighted mean 265), the other networks' only ones are
  first layers over 40 (KWS) and 27 (VWW).
* The published cycles per MAC put the missing classes on opposite sides on different cores:
  on the M4, AD costs 4.57 cycles per MAC against 6.76-9.62 for the other three; on the M85
  0.96 against 0.33-0.86, and IC 0.33 against 0.63-0.96. Meeting +/-30 % needs a fully
  connected price below every other network's average on the M4 but twice IC's on the M85,
  and an im2col price on the M85 below every other network's average. Nothing the three
  fitting networks contain says so, and CMSIS-NN's kernel code does not either. On the DSP
  path (M4, M33) the fully connected inner loop (``arm_nn_vec_mat_mult_t_s8`` V.1.5.1: three
  loads, six ``SXTAB16``, four ``SMLAD`` per 8 MACs) takes more instructions per MAC than the
  im2col matrix product (``arm_nn_mat_mult_kernel_s8_s16`` V.1.0.3: four loads, two
  ``read_and_pad`` of five, eight ``SMLAD`` per 16 MACs), about 1.6 against 1.4 (the copies
  under ``closed/renesas/code/EK_RA6M4/src/tensorflow/lite/micro/tools/make/downloads/cmsis/
  CMSIS/NN/Source/`` of mlcommons/tiny_results_v0.7@64623f41b672; the M4's build downloads
  its 2020 copy, not in its submission), while the M4's published figures show it a third
  cheaper. On Helium the fully connected kernel (``arm_nn_vec_mat_mult_t_s8``: one input
  vector against four weight rows) and the convolutions' matrix product
  (``arm_nn_mat_mult_nt_t_s8``: four im2col rows against one weight row) both issue five vector loads and four ``VMLADAVA`` per 64 MACs (the
  copies the EK-RA8D1 submission builds, V.5.4.1 and V.2.1.2, under
  ``closed/Renesas/code/EK-RA8D1/src/tflite-micro/cmsis_nn/Source/NNSupportFunctions/`` of
  mlcommons/tiny_results_v1.2@cadb362343f5); the difference is memory (a fully connected
  layer streams every weight once per inference from flash, where the submission keeps the
  model, a convolution reuses it), which the board's flash and cache decide, not the kernel.
* Structures motivated by the kernels were tried against the held-out errors and none meets
  the target, so none was adopted (that comparison used the held-out errors: model selection
  on the test set, reported here and in the README, not shipped): a free per-output
  requantisation cost (8 of 12 within), a free im2col cost per element (7), a free per-operator
  overhead (9), a free cost per weight byte (8), the fully connected cost tied to the im2col
  convolution's (9) or to the 1x1 convolution's (7), im2col tied to 1x1 convolutions, as on
  Helium they share the matrix kernel (8), and all multiply-accumulate classes tied (7).
  ``python -m pipeline.bench.cost_structures`` prints these figures.
* What would fix it: TFLite Micro + CMSIS-NN latencies (whole network or per operator), on
  the same core and build, of networks outside the four whose MACs are mostly fully
  connected (M4, M85) or im2col convolutions reducing over 100 or more inputs (M85), with
  their model files, so that a held-out network's main class is priced by other networks'
  layers of the same kind.

Cores without a TFLite Micro result are derived from a fitted one through the cycle ratio
other engines measured on both cores (``core_ratios``; the ratios' spread widens the
band), or take a fitted core as a named proxy; all others are not calibrated.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import yaml
from scipy import optimize

from components.mcu_size_gate import measure
from components.tflm import model as tflm_model

CALIBRATION_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calibration")
PUBLISHED_FILE = os.path.join(CALIBRATION_DIR, "published.yaml")
MODELS_DIR = os.path.join(CALIBRATION_DIR, "mlperf_tiny")
ENGINE = "TFLite Micro + CMSIS-NN"
RIDGE = 0.1


class CalibrationError(ValueError):
    """The calibration data are missing or malformed; the message names the file and the entry."""


@dataclasses.dataclass(frozen=True)
class PublishedResult:
    """One published throughput: a model on a board, with where the figure comes from."""

    system: str
    model: str
    inferences_per_second: float
    clock_mhz: float
    source: str

    @property
    def latency_ms(self) -> float:
        return 1000.0 / self.inferences_per_second

    @property
    def cycles(self) -> float:
        return self.clock_mhz * 1e6 / self.inferences_per_second


@dataclasses.dataclass(frozen=True)
class System:
    """A published system: board, core, clock, engine, and its result per model."""

    id: str
    board: str
    core: str
    clock_mhz: float
    engine: str
    evidence: Tuple[str, ...]
    results: Dict[str, PublishedResult]


@dataclasses.dataclass(frozen=True)
class RatioPair:
    """One engine measured on a base (Cortex-M4) board and another core's board in the same round."""

    engine: str
    round: str
    base: System
    other: System

    def ratios(self) -> Dict[str, float]:
        """Cycles on the other core / cycles on the base core, per model."""
        return {m: self.other.results[m].cycles / self.base.results[m].cycles
                for m in self.base.results if m in self.other.results}


@dataclasses.dataclass(frozen=True)
class SearchedSystem:
    """A published system that was considered for the fit and not used, with the reason."""

    round: str
    system: str
    reason: str
    source: str


@dataclasses.dataclass(frozen=True)
class CalibrationData:
    """Everything ``published.yaml`` and the reference models hold.

    ``depth``: per model and multiply-accumulate class, the MAC-weighted mean reduction depth
    (MACs per output element: kernel height x width x input channels for a convolution, the
    input units of a fully connected layer, the kernel's taps for a depthwise one).
    """

    fit: List[System]
    core_ratios: Dict[str, Tuple[str, List[RatioPair]]]
    proxies: Dict[str, Tuple[str, str, bool]]
    comparison: List[System]
    models: Dict[str, Dict[str, object]]
    work: Dict[str, Dict[str, int]]
    searched: List[SearchedSystem] = dataclasses.field(default_factory=list)
    depth: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)


def _source(repositories: Mapping, round_: str, path: str) -> str:
    repo = repositories.get(round_)
    if not repo:
        raise CalibrationError(f"{PUBLISHED_FILE}: round '{round_}' is not in 'repositories'.")
    return f"github.com/{repo['repository']}@{repo['commit'][:12]}:{path}"


def _system(raw: Mapping, repositories: Mapping, round_: Optional[str] = None, engine: str = "",
            core: str = "", system_id: str = "") -> System:
    round_ = raw.get("round", round_)
    results = {m: PublishedResult(system_id or raw.get("id", raw["board"]), m, float(r["inferences_per_second"]),
                                  float(raw["clock_mhz"]), _source(repositories, round_, r["file"]))
               for m, r in raw["results"].items()}
    return System(system_id or raw.get("id", raw["board"]), raw["board"], raw.get("core", core),
                  float(raw["clock_mhz"]), raw.get("engine", engine), tuple(raw.get("evidence", ())), results)


def load(published_file: str = PUBLISHED_FILE, models_dir: str = MODELS_DIR) -> CalibrationData:
    """Reads the published results and measures each reference model's work per op class.

    Raises:
        CalibrationError: naming the file and the entry that is missing or malformed.
    """
    try:
        with open(published_file, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        repositories = raw["repositories"]
        fit = [_system(s, repositories) for s in raw["fit"]]
        core_ratios = {}
        for core, entry in raw.get("core_ratios", {}).items():
            pairs = [RatioPair(p["engine"], p["round"],
                               _system(p["base"], repositories, p["round"], p["engine"], "cortex-m4",
                                       f"{p['round']}/{p['engine']}/{p['base']['board']}"),
                               _system(p["other"], repositories, p["round"], p["engine"], core,
                                       f"{p['round']}/{p['engine']}/{p['other']['board']}"))
                     for p in entry["pairs"]]
            core_ratios[core] = (entry["reason"], pairs)
        proxies = {core: (p["core"], p["reason"], bool(p.get("same_core"))) for core, p in raw.get("proxies", {}).items()}
        comparison = [_system(s, repositories) for s in raw.get("comparison", [])]
        searched = [SearchedSystem(e["round"], e["system"], e["reason"], _source(repositories, e["round"], e["system"]))
                    for e in raw.get("searched", [])]
        models = raw["models"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise CalibrationError(f"The latency calibration {published_file} cannot be read ({err!r}); restore it "
                               "from the repository.") from err
    work, depth = {}, {}
    for name, model in models.items():
        path = os.path.join(models_dir, model["file"])
        try:
            with open(path, "rb") as f:
                operators = tflm_model.operators(f.read())
        except OSError as err:
            raise CalibrationError(f"The reference model {path} of '{name}' is missing ({err}); restore it from "
                                   "the repository.") from err
        op_work = measure.op_work(operators)
        work[name] = measure.work_by_class(op_work)
        depth[name] = reduction_depth(operators, op_work)
    return CalibrationData(fit, core_ratios, proxies, comparison, models, work, searched, depth)


MAC_CLASSES = ("conv_2d", "conv_2d_1x1", "depthwise_conv_2d", "fully_connected")


def reduction_depth(operators: Sequence[tflm_model.Operator], op_work: Sequence[measure.OpWork]) -> Dict[str, float]:
    """Per multiply-accumulate class, the MAC-weighted mean of MACs per output element."""
    macs = {c: 0.0 for c in MAC_CLASSES}
    weighted = {c: 0.0 for c in MAC_CLASSES}
    for operator, item in zip(operators, op_work):
        if item.op_class in MAC_CLASSES and item.work and operator.outputs[0].elements:
            macs[item.op_class] += item.work
            weighted[item.op_class] += item.work * item.work / operator.outputs[0].elements
    return {c: weighted[c] / macs[c] for c in MAC_CLASSES if macs[c]}


def predict_cycles(cycles_per_unit: Mapping[str, float], work: Mapping[str, float]) -> float:
    """Cycles of one inference: the sum over op classes of cycles per unit x work."""
    return float(sum(cycles_per_unit[c] * work.get(c, 0) for c in measure.OP_CLASSES))


def fit_cycles(work: Mapping[str, Mapping[str, float]], cycles: Mapping[str, float],
               ridge: float = RIDGE) -> Dict[str, float]:
    """Cycles per unit of work per op class, fitted on ``cycles`` (by model) of one core.

    Least squares on ``log(predicted / published)``, with ``k_c = exp(a + d_c)`` and the
    penalty ``ridge * sum d_c**2`` (see the module doc).
    """
    models = sorted(cycles)
    matrix = np.array([[work[m].get(c, 0) for c in measure.OP_CLASSES] for m in models], dtype=float)
    observed = np.array([cycles[m] for m in models], dtype=float)
    start = math.log(float(np.mean(observed / matrix.sum(axis=1))))

    def residuals(params):
        per_unit = np.exp(params[0] + params[1:])
        return np.concatenate([np.log(matrix @ per_unit / observed), math.sqrt(ridge) * params[1:]])

    solution = optimize.least_squares(residuals, np.concatenate([[start], np.zeros(len(measure.OP_CLASSES))]),
                                      xtol=1e-12, ftol=1e-12, gtol=1e-12)
    return dict(zip(measure.OP_CLASSES, np.exp(solution.x[0] + solution.x[1:]).tolist()))


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """One leave-one-model-out prediction: fitted on the other models, compared with the published figure."""

    model: str
    published_ms: float
    predicted_ms: float

    @property
    def error(self) -> float:
        """(predicted - published) / published."""
        return self.predicted_ms / self.published_ms - 1.0

    @property
    def ratio(self) -> float:
        """published / predicted: what the estimate must be multiplied by to be right."""
        return self.published_ms / self.predicted_ms


@dataclasses.dataclass(frozen=True)
class CoreFit:
    """A core fitted on one published TFLite Micro system."""

    system: System
    cycles_per_unit: Dict[str, float]
    fitted_ms: Dict[str, float]
    held_out: List[HeldOut]

    @property
    def band(self) -> Tuple[float, float]:
        """The range of published / predicted over the held-out models, widened to include 1."""
        ratios = [h.ratio for h in self.held_out]
        return min(min(ratios), 1.0), max(max(ratios), 1.0)


@dataclasses.dataclass(frozen=True)
class Coverage:
    """What the networks a held-out prediction is fitted on show of the held-out network's main class.

    ``op_class`` is the multiply-accumulate class with most of the held-out network's MACs;
    ``share``/``fitted_share`` its fraction of the held-out / each fitting network's MACs;
    ``depth``/``fitted_depth`` its MAC-weighted reduction depth there (absent: the class has no
    MACs in that network). From the model files alone: no published figure enters it.
    """

    model: str
    op_class: str
    share: float
    depth: float
    fitted_share: Dict[str, float]
    fitted_depth: Dict[str, float]


def coverage(data: CalibrationData, model: str, fitted: Sequence[str]) -> Coverage:
    """How much of ``model``'s dominant multiply-accumulate class the ``fitted`` networks contain."""

    def macs(name):
        return sum(data.work[name][c] for c in MAC_CLASSES)

    op_class = max(MAC_CLASSES, key=lambda c: data.work[model][c])
    return Coverage(model, op_class, data.work[model][op_class] / macs(model), data.depth[model][op_class],
                    {m: data.work[m][op_class] / macs(m) for m in fitted},
                    {m: data.depth[m][op_class] for m in fitted if op_class in data.depth[m]})


def fit_system(system: System, work: Mapping[str, Mapping[str, float]], ridge: float = RIDGE) -> CoreFit:
    """Fits ``system`` on all its models and on every leave-one-model-out subset."""
    cycles = {m: r.cycles for m, r in system.results.items()}
    per_unit = fit_cycles(work, cycles, ridge)
    to_ms = 1000.0 / (system.clock_mhz * 1e6)
    fitted = {m: predict_cycles(per_unit, work[m]) * to_ms for m in cycles}
    held_out = []
    for model in sorted(cycles):
        rest = {m: c for m, c in cycles.items() if m != model}
        predicted = predict_cycles(fit_cycles(work, rest, ridge), work[model]) * to_ms
        held_out.append(HeldOut(model, system.results[model].latency_ms, predicted))
    return CoreFit(system, per_unit, fitted, held_out)


@dataclasses.dataclass(frozen=True)
class CoreCalibration:
    """How one core's latency is estimated: cycles per unit of work, its band and what it rests on.

    ``basis`` is ``fit`` (fitted on published TFLite Micro results on this core), ``derived``
    (a fitted core times a cycle ratio other engines measured) or ``proxy`` (a fitted core's
    figures, named with the reason).
    """

    core: str
    basis: str
    engine: str
    cycles_per_unit: Dict[str, float]
    band: Tuple[float, float]
    label: str
    points: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Calibrations by core, and the fits and data they come from."""

    cores: Dict[str, CoreCalibration]
    fits: Dict[str, CoreFit]
    data: CalibrationData

    def for_core(self, core: str) -> Optional[CoreCalibration]:
        return self.cores.get(core)


def _derived(core: str, reason: str, pairs: Sequence[RatioPair], base: CoreFit) -> CoreCalibration:
    ratios = [r for pair in pairs for r in pair.ratios().values()]
    middle, low, high = statistics.median(ratios), min(ratios), max(ratios)
    engines = ", ".join(dict.fromkeys(f"{p.engine} ({p.round})" for p in pairs))
    return CoreCalibration(
        core, "derived", ENGINE, {c: k * middle for c, k in base.cycles_per_unit.items()},
        (base.band[0] * low / middle, base.band[1] * high / middle),
        f"derived: {base.system.core} fit x {core}/{base.system.core} cycle ratio {middle:.2f} (median of "
        f"{len(ratios)} same-engine pairs, {low:.2f}-{high:.2f}: {engines}); {reason}",
        tuple([base.system.id] + [s.id for p in pairs for s in (p.base, p.other)]))


def build(data: Optional[CalibrationData] = None, ridge: float = RIDGE) -> CostModel:
    """Fits every published TFLite Micro system and derives the cores that have none.

    Raises:
        CalibrationError: when the calibration data cannot be read.
    """
    data = data or load()
    fits = {s.core: fit_system(s, data.work, ridge) for s in data.fit}
    cores: Dict[str, CoreCalibration] = {}
    for core, fit in fits.items():
        lo, hi = fit.band
        cores[core] = CoreCalibration(
            core, "fit", f"{ENGINE} ({fit.system.engine})", fit.cycles_per_unit, fit.band,
            f"fit on {fit.system.id} ({fit.system.clock_mhz:g} MHz, {len(fit.held_out)} MLPerf Tiny models); "
            f"held-out band x{lo:.2f}-x{hi:.2f}", (fit.system.id,))
    for core, (reason, pairs) in data.core_ratios.items():
        base = fits.get(pairs[0].base.core) if pairs else None
        if base is not None:
            cores[core] = _derived(core, reason, pairs, base)
    for core, (target, reason, same_core) in data.proxies.items():
        if target in cores:
            source = cores[target]
            if same_core:
                cores[core] = dataclasses.replace(source, core=core, label=f"{source.label} ({core}: {reason})")
            else:
                cores[core] = dataclasses.replace(source, core=core, basis="proxy",
                                                  label=f"proxy: {target} ({reason}); {source.label}")
    return CostModel(cores, fits, data)
