"""The front end in streaming mode: what the device computes frame by frame, against Transform's batch features."""

import glob
import os

import numpy as np
import tensorflow as tf

from components.audio_example_gen import wav
from components.streaming_evaluator import evaluate
from pipeline.tasks.kws import features

PARAMS = features.frontend_params(30, 20, 40, 16000)
FRAMES = {"per_window": 49, "stride_ms": 20, "length_ms": 30}


def _clips(root, pattern="*/*.wav", count=20):
    paths = sorted(glob.glob(os.path.join(root, pattern)))[:count]
    return [wav.read_wav(open(p, "rb").read(), 16000) for p in paths]


def _batch(clip):
    """The features Transform computes for a clip (the raw int16 PCM bytes through ``batch_features``)."""
    return features.batch_features(tf.constant([clip.astype("<i2").tobytes()]), PARAMS, len(clip)).numpy()[0]


def test_a_one_second_stream_gives_the_window_the_model_was_trained_on(tiny_dataset):
    clip = _clips(tiny_dataset, "yes/*.wav", 1)[0]
    frames = features.stream_features(clip, PARAMS)
    ends = evaluate.window_ends(len(frames), FRAMES["per_window"], stride_frames=5)
    assert ends.tolist() == [48] and evaluate.end_time_ms(ends, FRAMES).tolist() == [990]
    np.testing.assert_array_equal(frames[ends[0] - 48:ends[0] + 1], _batch(clip))


def test_inside_a_stream_a_clip_differs_from_its_batch_features_only_while_the_state_warms_up(tiny_dataset):
    before, clip = _clips(tiny_dataset, "no/*.wav", 3)[1:], _clips(tiny_dataset, "yes/*.wav", 1)[0]
    stream = np.concatenate(before + [clip])
    frames = features.stream_features(stream, PARAMS)
    first = sum(len(c) for c in before) // 320          # the clip's first frame in the stream
    window = frames[first:first + 49]
    difference = np.abs(window - _batch(clip)).mean(axis=1)   # per frame, in feature units (0 to ~26)
    # The noise estimate carried over from the audio before differs from a fresh one at first ...
    assert difference[:5].mean() > 3.0
    # ... and is mostly forgotten within the window (the smoothing forgets 2.5 to 6 % per frame).
    assert difference[-10:].mean() < 0.1 * difference[:5].mean()


def test_a_long_recording_in_segments_equals_one_continuous_run(tiny_dataset):
    stream = np.concatenate(_clips(tiny_dataset, count=60))     # 60 s of words, silence and noise
    whole = features.stream_features(stream, PARAMS)
    segmented = features.stream_features(stream, PARAMS, segment_seconds=7, warmup_seconds=30)
    assert whole.shape == segmented.shape == (1 + (len(stream) - 480) // 320, 40)
    np.testing.assert_array_equal(whole, segmented)
