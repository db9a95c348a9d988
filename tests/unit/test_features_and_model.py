import numpy as np
import tensorflow as tf

from components.audio_example_gen import wav
from pipeline import config as config_lib
from pipeline import pipeline as tinyml_pipeline
from pipeline.tasks.kws import features, model, preprocessing

PARAMS = features.frontend_params(30, 20, 40, 16000)


def test_feature_map_is_49_by_40_for_one_second():
    assert features.feature_shape(PARAMS, 16000) == (49, 40)
    assert features.feature_shape(features.frontend_params(40, 20, 32, 16000), 16000) == (49, 32)


def test_front_end_separates_speech_from_silence(tiny_dataset):
    speech = wav.read_wav(open(f"{tiny_dataset}/yes/{sorted(__import__('os').listdir(tiny_dataset + '/yes'))[0]}", "rb").read(), 16000)
    silent = np.zeros(16000, np.int16)
    batch = tf.constant([speech.astype("<i2").tobytes(), silent.tobytes()])
    maps = features.batch_features(batch, PARAMS, 16000).numpy()
    assert maps.shape == (2, 49, 40) and np.isfinite(maps).all()
    assert maps[0].mean() > maps[1].mean() + 1.0
    # the float features are micro_speech's uint16 output scaled by 10/256
    assert maps.max() < 65536 * features.FEATURE_SCALE


def test_label_to_id_uses_class_order_and_flags_unknown_labels():
    labels = ("_silence_", "_unknown_", "yes", "no")
    ids = preprocessing.label_to_id(tf.constant([[b"no"], [b"_silence_"], [b"yes"], [b"maybe"]]), labels)
    assert ids.numpy().tolist() == [3, 0, 2, -1]


def test_preprocessing_fn_outputs_flat_features_and_label():
    config = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    custom = tinyml_pipeline.transform_config(config)
    audio = tf.constant([[np.zeros(16000, "<i2").tobytes()]] * 3)
    out = preprocessing.preprocessing_fn({"audio": audio, "label": tf.constant([[b"go"]] * 3)}, custom)
    assert out[features.FEATURES_KEY].shape == (3, 49 * 40)
    assert out[features.LABEL_KEY].numpy().tolist() == [config.data.labels.index("go")] * 3


def test_preprocessing_fn_computes_features_from_a_warmed_up_front_end(tiny_dataset):
    import os

    config = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    custom = tinyml_pipeline.transform_config(config)
    assert custom[preprocessing.WARMUP_MS_CONFIG_KEY] == features.WARMUP_MS >= 2000
    folder = os.path.join(tiny_dataset, "yes")
    clip = wav.read_wav(open(os.path.join(folder, sorted(os.listdir(folder))[0]), "rb").read(), 16000)
    audio = tf.constant([[clip.astype("<i2").tobytes()]])
    out = preprocessing.preprocessing_fn({"audio": audio, "label": tf.constant([[b"yes"]])}, custom)
    warm = features.warm_clip_features(tf.constant(clip), PARAMS, features.WARMUP_MS).numpy()
    fresh = features.clip_features(tf.constant(clip), PARAMS).numpy()
    np.testing.assert_array_equal(out[features.FEATURES_KEY].numpy().reshape(49, 40), warm)
    assert np.abs(warm - fresh).mean() > 1.0


def test_models_map_features_to_class_probabilities():
    for name in model.MODEL_BUILDERS:
        m = model.build_model(name, (49, 40), 12, width=16)
        probabilities = m(np.random.rand(2, 1960).astype(np.float32)).numpy()
        assert probabilities.shape == (2, 12)
        assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert model.build_model("ds_cnn", (49, 40), 12, 64).count_params() < 60_000


def test_front_end_hash_changes_with_any_parameter():
    assert features.frontend_hash(PARAMS) == features.frontend_hash(dict(PARAMS))
    assert features.frontend_hash(PARAMS) != features.frontend_hash({**PARAMS, "pcan_strength": 0.9})
