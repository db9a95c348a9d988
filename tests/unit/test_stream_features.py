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


def _warm(clip, warmup_ms=features.WARMUP_MS):
    """The features Transform computes for a clip: ``batch_features`` with the front end warmed up."""
    return features.batch_features(tf.constant([clip.astype("<i2").tobytes()]), PARAMS, len(clip),
                                   warmup_ms=warmup_ms).numpy()[0]


def test_warm_features_are_the_front_end_run_on_after_the_clips_own_background(tiny_dataset):
    clip = _clips(tiny_dataset, "yes/*.wav", 1)[0]
    warmup = features.warmup_audio(tf.constant(clip), PARAMS).numpy()
    assert len(warmup) == 3 * 16000 and len(warmup) % 320 == 0          # whole frame steps: frames stay aligned
    quiet = features.quiet_stretch(tf.constant(clip), 16000).numpy()
    energies = [np.sum(clip[i:i + 3200].astype(np.float64) ** 2) for i in range(0, 16000 - 3200 + 1, 160)]
    assert len(quiet) == 3200 and np.sum(quiet.astype(np.float64) ** 2) == min(energies)   # the quietest 200 ms
    assert wav.rms_dbfs(quiet) < wav.rms_dbfs(clip) - 6                                      # background, not the word
    np.testing.assert_array_equal(warmup[:6400], np.concatenate([quiet, quiet[::-1]]))
    # A device that heard exactly that background before the clip computes exactly these frames.
    frames = features.stream_features(np.concatenate([warmup, clip]), PARAMS)
    np.testing.assert_array_equal(frames[-49:], _warm(clip))
    assert np.abs(_warm(clip) - _batch(clip)).mean() > 1.0
    np.testing.assert_array_equal(_warm(clip, warmup_ms=0), _batch(clip))


def test_in_a_stream_a_clip_has_its_warm_features_not_its_fresh_ones():
    from pipeline.tasks.kws import generate, speech

    rng = np.random.default_rng(3)
    stream = rng.standard_normal(6 * 16000) * 10 ** (-40 / 20)             # steady noise at -40 dBFS, 6 s
    profile = generate.SpeakerProfile("s1", "en-us+m3", rate=160, pitch=50, pitch_range=50)
    with speech.Speaker() as tts:
        word = generate.synthesize(tts, "yes", profile, rng, 16000)
    start = int(5.3 * 16000)
    stream[start:start + len(word)] += word * 10 ** ((-40 + 15) / 20) / np.sqrt(np.mean(word ** 2))   # 15 dB SNR
    samples = np.round(stream * 32767).astype(np.int16)
    device = features.stream_features(samples, PARAMS)[5 * 50:5 * 50 + 49]   # the second from 5 s, as the device has it
    clip = samples[5 * 16000:6 * 16000]
    fresh, warm = np.abs(_batch(clip) - device), np.abs(_warm(clip) - device)
    # Features span about 0 to 26. From a reset state the clip is off by about 7 on average; warmed up on
    # its own quietest 200 ms, most values are the device's exactly and the mean is 20 times smaller
    # (measured: 78 to 80 % equal, mean 0.26 to 0.31, with three noise seeds).
    assert fresh.mean() > 3.0
    assert (warm == 0).mean() > 0.7 and warm.mean() < 0.05 * fresh.mean()
