"""The ModelSearch's ``tuner_fn``, for every task family: the family's space, judged on the target board.

The family names a module with ``build_model(hp, settings)`` (its search space and model
builder, ``TaskFamily.search_module``); this module builds the device judge from the
config's target board and budgets and hands both to ``DeviceAwareSearch``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

SEARCH_MODULE_KEY = "search_module"
SETTINGS_KEY = "model_settings"      # input_shape, classes, training: what build_model needs
DEVICE_KEY = "device"                # target, boards_dirs, max_latency_ms
SEARCH_KEY = "search"                # max_epochs, factor, iterations, time_budget_seconds, seed, steps_per_epoch
UNTRAINED_VALUES = ("dropout", "learning_rate")  # hyperparameters that leave the int8 graph unchanged
CALIBRATION_EXAMPLES = 32  # train examples that set a judged candidate's int8 scales


def builder(search_module: str, settings: Mapping[str, Any]) -> Callable[[Any], Any]:
    """``build(hp)`` for the family's module."""
    module = importlib.import_module(search_module)
    return lambda hp: module.build_model(hp, settings)


def device_judge(input_shape, target: str, boards_dirs=(), max_latency_ms=None, calibration_seed: int = 0,
                 calibration: Optional[np.ndarray] = None):
    """A judge that converts an untrained candidate to int8 as the quantizer does and measures it
    against ``target`` as the McuSizeGate does (arena on TFLite Micro, flash, estimated latency).

    ``calibration``: model inputs ``[n, rows, columns]`` that set the int8 scales (the graph's
    shape, not the values, decides arena, flash and latency; real inputs keep the scales
    sensible); random ones when none are given.
    """
    import tensorflow as tf

    from components.mcu_size_gate import devices, gate
    from components.model_search.tuner import CandidateCost
    from components.tflite_quantizer import quantize
    from components.tflm import TflmError

    from components.mcu_size_gate import calibration as latency_calibration

    profile = devices.get_profile(target, devices.load_catalogue(boards_dirs))
    cost_model = latency_calibration.build()  # fitted once for the whole search
    rows, columns = input_shape
    representative = (np.asarray(calibration, np.float32).reshape(-1, rows, columns) if calibration is not None else
                      np.random.default_rng(calibration_seed).normal(size=(16, rows, columns)).astype(np.float32))

    def judge(model) -> "CandidateCost":
        function = tf.function(lambda x: model(tf.reshape(x, [-1, rows * columns])),
                               input_signature=[tf.TensorSpec([1, rows, columns], tf.float32)])
        try:
            flatbuffer = quantize.convert_function(function.get_concrete_function(), model, "int8", representative)
            estimate, too_slow = gate.estimate_latency(flatbuffer, profile, max_latency_ms, cost_model)
            if too_slow:  # turned away by its shape alone: no arena measurement needed
                return CandidateCost(fits=False, reasons=[too_slow], model_bytes=len(flatbuffer), macs=0,
                                     arena_bytes=0, ram_used=0, flash_used=0, latency_ms=estimate.ms,
                                     latency_high_ms=estimate.high_ms)
            analysis = gate.analyse(flatbuffer, [profile], max_latency_ms=max_latency_ms, cost_model=cost_model)
        except (quantize.QuantizationError, TflmError) as err:
            return CandidateCost(fits=False, reasons=[f"does not run on TFLite Micro: {err}"], model_bytes=0, macs=0,
                                 arena_bytes=0, ram_used=0, flash_used=0, latency_ms=None, latency_high_ms=None)
        verdict = analysis.verdicts[0]
        return CandidateCost(
            fits=verdict.fits, reasons=list(verdict.reasons), model_bytes=analysis.model_bytes,
            macs=int(analysis.macs), arena_bytes=int(getattr(verdict, "arena_bytes", 0) or
                                                       analysis.arena.smallest_bytes),
            ram_used=verdict.ram_used, flash_used=verdict.flash_used, latency_ms=verdict.latency_ms,
            latency_high_ms=getattr(verdict, "latency_high_ms", None))

    return judge


def tuner_fn(fn_args):
    """TFX Tuner's entry point: the device-aware Hyperband search over the family's space."""
    import tensorflow_transform as tft
    from tfx import v1 as tfx

    from components.model_search.tuner import DeviceAwareSearch
    from pipeline.tasks.common import training as training_lib

    config: Dict[str, Any] = fn_args.custom_config
    settings, device, search = config[SETTINGS_KEY], config[DEVICE_KEY], config[SEARCH_KEY]
    build = builder(config[SEARCH_MODULE_KEY], settings)
    transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train, evaluation = training_lib.train_and_eval_datasets(
        fn_args, transform_output, settings["training"], settings["label_key"], select=training_lib.model_inputs)
    calibration = next(iter(train.unbatch().batch(CALIBRATION_EXAMPLES)))[0][training_lib.FEATURES_KEY].numpy()
    judge = device_judge(settings["input_shape"], device["target"], device.get("boards_dirs", ()),
                         device.get("max_latency_ms"), calibration=calibration)
    tuner = DeviceAwareSearch(
        build, judge, untrained_values=UNTRAINED_VALUES, max_epochs=search["max_epochs"], factor=search["factor"],
        iterations=search["iterations"], seed=search["seed"], time_budget_seconds=search["time_budget_seconds"],
        directory=fn_args.working_dir)
    steps_per_epoch = search.get("steps_per_epoch")  # a short budget per epoch for quick searches (tests)
    if steps_per_epoch:
        train = training_lib.repeated(train)
    return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={
        "train": train, "evaluation": evaluation, "steps_per_epoch": steps_per_epoch})
