"""The latency cost model reproduces the published measurements it is calibrated on."""

import dataclasses

import pytest

from components.mcu_size_gate import devices, latency, measure


@pytest.fixture(scope="module")
def mlperf_kws_dscnn_int8():
    """The MLPerf Tiny keyword-spotting DS-CNN (mlcommons/tiny keras_model.py, ds_cnn), int8."""
    import numpy as np
    import tensorflow as tf
    from tf_keras import Model, layers

    inputs = layers.Input(shape=(49, 10, 1))
    x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same", activation="relu")(inputs)
    for _ in range(4):
        x = layers.DepthwiseConv2D((3, 3), padding="same", activation="relu")(x)
        x = layers.Conv2D(64, (1, 1), padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(pool_size=(25, 5))(x)
    outputs = layers.Dense(12, activation="softmax")(layers.Flatten()(x))
    model = Model(inputs, outputs)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.normal(size=(1, 49, 10, 1)).astype(np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def test_the_calibration_network_has_the_macs_counted_by_hand(mlperf_kws_dscnn_int8):
    by_hand = 25 * 5 * 64 * 10 * 4 + 4 * (25 * 5 * 64 * 9) + 4 * (25 * 5 * 64 * 64) + 64 * 12
    assert latency.model_macs(measure.count_macs(mlperf_kws_dscnn_int8)) == by_hand == latency.MLPERF_KWS_DSCNN_MACS


def test_estimates_reproduce_the_published_board_measurements():
    l4r5 = devices.load_catalogue()["nucleo_l4r5zi"]
    macs = latency.MLPERF_KWS_DSCNN_MACS
    assert latency.estimate(macs, l4r5, "reference").ms == pytest.approx(1000 / 5.497, rel=1e-3)
    assert latency.estimate(macs, l4r5, "optimized").ms == pytest.approx(1000 / 10.019, rel=1e-3)
    # The published energy run: 7373.7 uJ per inference with the reference kernels.
    assert latency.estimate(macs, l4r5, "reference").energy_uj == pytest.approx(7373.7, rel=0.02)
    # Core ratios: the same engine's throughput on each board, scaled by the clocks, is reproduced.
    for core, (hz, rate) in latency._BOSCH_HALE.items():
        ratio = latency.CORE_FACTOR[core] * latency._M4_HZ / hz
        assert ratio == pytest.approx(15.954 / rate, rel=1e-9)


def test_faster_cores_and_clocks_are_faster_and_uncalibrated_cores_say_so():
    catalogue = devices.load_catalogue()
    estimates = latency.table(1_000_000, catalogue.values())
    assert estimates["nucleo_h743zi2"].ms < estimates["nucleo_l4r5zi"].ms < estimates["pico"].ms
    assert estimates["pico"].calibration.startswith("measured: cortex-m0plus")
    assert estimates["alif_e7_hp"].calibration.startswith("proxy: cortex-m33")
    assert latency.estimate(1_000_000, catalogue["pico"], "reference").ms > estimates["pico"].ms
    measured_board = dataclasses.replace(catalogue["pico"], cycles_per_mac=2.0)
    own = latency.estimate(1_000_000, measured_board)
    assert own.calibration == "board profile: pico" and own.ms == pytest.approx(1e6 * 2 / 133e6 * 1e3, rel=1e-3)
