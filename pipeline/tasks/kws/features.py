"""The audio front end the microcontroller runs, as TensorFlow ops.

TFLite Micro's micro_speech example computes its features with the
``audio_microfrontend`` library (FFT, mel-like filterbank, noise reduction, PCAN
gain control, log scale). TensorFlow ships the same C code as the
``AudioMicrofrontend`` op, so features computed here in Transform are the ones the
device computes from its microphone. The parameters below are the library's
defaults, spelled out so that the firmware can be configured from them and their
hash can travel with every release.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Tuple

import numpy as np
import tensorflow as tf
# Importing the op module registers the AudioMicrofrontend kernel in this process,
# which every graph holding the transform (Transform, Trainer, Evaluator) needs.
from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

from pipeline.tasks.common.preprocessing import LABEL_KEY, RAW_LABEL_KEY  # noqa: F401 (re-exported)

FEATURES_KEY = "features"
RAW_AUDIO_KEY = "audio"

# micro_speech scales the uint16 front-end output by 10/256 to get float features;
# its firmware applies the same scale when it quantizes features to int8.
FEATURE_SCALE = 10.0 / 256.0


def frontend_params(window_ms: int, stride_ms: int, channels: int, sample_rate: int) -> Dict[str, Any]:
    """All parameters of the audio front end, as the TFLM ``FrontendConfig`` names them."""
    return {
        "sample_rate": sample_rate,
        "window_size": window_ms,
        "window_step": stride_ms,
        "num_channels": channels,
        "upper_band_limit": 7500.0,
        "lower_band_limit": 125.0,
        "smoothing_bits": 10,
        "even_smoothing": 0.025,
        "odd_smoothing": 0.06,
        "min_signal_remaining": 0.05,
        "enable_pcan": True,
        "pcan_strength": 0.95,
        "pcan_offset": 80.0,
        "gain_bits": 21,
        "enable_log": True,
        "scale_shift": 6,
        "out_scale": 1,
        "feature_scale": FEATURE_SCALE,
    }


def frontend_hash(params: Dict[str, Any]) -> str:
    """A stable hash of the front-end parameters; a device whose front end differs must not take the model."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def feature_shape(params: Dict[str, Any], clip_samples: int) -> Tuple[int, int]:
    """(frames, channels) of one clip's feature map: 49 x 40 for 1 s at 30 ms / 20 ms."""
    window = params["sample_rate"] * params["window_size"] // 1000
    step = params["sample_rate"] * params["window_step"] // 1000
    frames = 1 + (clip_samples - window) // step
    return frames, params["num_channels"]


def clip_features(samples: tf.Tensor, params: Dict[str, Any]) -> tf.Tensor:
    """Features of one clip: int16 samples [n] to float32 [frames, channels]."""
    raw = audio_microfrontend_op.audio_microfrontend(
        samples,
        sample_rate=params["sample_rate"],
        window_size=params["window_size"],
        window_step=params["window_step"],
        num_channels=params["num_channels"],
        upper_band_limit=params["upper_band_limit"],
        lower_band_limit=params["lower_band_limit"],
        smoothing_bits=params["smoothing_bits"],
        even_smoothing=params["even_smoothing"],
        odd_smoothing=params["odd_smoothing"],
        min_signal_remaining=params["min_signal_remaining"],
        enable_pcan=params["enable_pcan"],
        pcan_strength=params["pcan_strength"],
        pcan_offset=params["pcan_offset"],
        gain_bits=params["gain_bits"],
        enable_log=params["enable_log"],
        scale_shift=params["scale_shift"],
        out_scale=params["out_scale"],
        out_type=tf.float32,
    )
    return raw * params["feature_scale"]


# Training features with the device's front-end state (``warm_clip_features``): the front end runs over
# WARMUP_MS of the clip's own background before the clip, as the device's runs over the audio before a word.
WARMUP_MS = 3000
QUIET_MS = 200          # the clip's quietest stretch of this length stands for the background before it
ENERGY_HOP_MS = 10      # the quiet stretch starts on a multiple of this


def quiet_stretch(samples: tf.Tensor, sample_rate: int, quiet_ms: int = QUIET_MS) -> tf.Tensor:
    """The clip's quietest ``quiet_ms`` (least energy, starting on a 10 ms boundary; the first on a tie): int16 [n]."""
    hop = sample_rate * ENERGY_HOP_MS // 1000
    hops = max(1, quiet_ms // ENERGY_HOP_MS)
    blocks = tf.shape(samples)[0] // hop
    x = tf.cast(samples[:blocks * hop], tf.float64)
    energy = tf.reduce_sum(tf.reshape(x * x, [blocks, hop]), axis=1)
    total = tf.concat([tf.zeros([1], tf.float64), tf.cumsum(energy)], 0)
    sums = total[hops:] - total[:-hops]
    # argmin of the sums rounded to whole units, so that ties resolve alike everywhere (lowest index)
    rounded = tf.round(sums)
    start = tf.cast(tf.reduce_min(tf.where(tf.equal(rounded, tf.reduce_min(rounded)))), tf.int32) * hop
    return samples[start:start + hops * hop]


def warmup_audio(samples: tf.Tensor, params: Dict[str, Any], warmup_ms: int = WARMUP_MS,
                 quiet_ms: int = QUIET_MS) -> tf.Tensor:
    """``warmup_ms`` (rounded down to whole frame steps) of the clip's quietest stretch, played forwards and
    backwards in turn (no jump where the copies meet): int16 [warmup samples]."""
    _, step = frame_timing(params)
    length = params["sample_rate"] * warmup_ms // 1000 // step * step
    quiet = quiet_stretch(samples, params["sample_rate"], quiet_ms)
    there_and_back = tf.concat([quiet, tf.reverse(quiet, [0])], 0)
    quiet_samples = max(1, quiet_ms // ENERGY_HOP_MS) * (params["sample_rate"] * ENERGY_HOP_MS // 1000)
    return tf.tile(there_and_back, [length // (2 * quiet_samples) + 1])[:length]


def warm_clip_features(samples: tf.Tensor, params: Dict[str, Any], warmup_ms: int = WARMUP_MS,
                       quiet_ms: int = QUIET_MS) -> tf.Tensor:
    """Features of one clip as a device that has been listening computes them: int16 [n] to float32 [frames, channels].

    The device runs the front end continuously, so its noise estimate and PCAN gain have settled on
    the background when a word arrives; computed from a reset state (``clip_features``), the first
    half second of a clip sees no noise subtracted and a different gain (on the synthetic streams the
    features of a second of audio differ from the device's by 6 units on average, of about 26). Here
    the front end first runs over ``warmup_ms`` of the clip's own background (its quietest
    ``quiet_ms``, looped), and the clip's frames are kept: the same front end, parameters and frame
    alignment (the warm-up is whole frame steps), only its state at the clip's start differs. On the
    synthetic streams these frames differ from the device's at the same place by 0.46 on average
    (3 s warm-up; 1 s: 1.1).
    """
    warm = warmup_audio(samples, params, warmup_ms, quiet_ms)
    warm_frames = tf.shape(warm)[0] // frame_timing(params)[1]
    return clip_features(tf.concat([warm, samples], 0), params)[warm_frames:]


def batch_features(audio_bytes: tf.Tensor, params: Dict[str, Any], clip_samples: int,
                   warmup_ms: int = 0, quiet_ms: int = QUIET_MS) -> tf.Tensor:
    """Features of a batch: raw little-endian int16 PCM strings [batch] or [batch, 1] to [batch, frames, channels];
    with ``warmup_ms``, each from a warmed-up front-end state (``warm_clip_features``), else from a reset one."""
    samples = tf.reshape(tf.io.decode_raw(audio_bytes, tf.int16, little_endian=True), [-1, clip_samples])
    frames, channels = feature_shape(params, clip_samples)
    if warmup_ms:
        def one(clip):
            return warm_clip_features(clip, params, warmup_ms, quiet_ms)
    else:
        def one(clip):
            return clip_features(clip, params)
    return tf.map_fn(one, samples, fn_output_signature=tf.TensorSpec([frames, channels], tf.float32))


def frame_timing(params: Dict[str, Any]) -> Tuple[int, int]:
    """(samples per frame, samples between frames) of the front end."""
    return params["sample_rate"] * params["window_size"] // 1000, params["sample_rate"] * params["window_step"] // 1000


def stream_features(samples: np.ndarray, params: Dict[str, Any], segment_seconds: int = 600,
                    warmup_seconds: int = 30) -> np.ndarray:
    """The front end over a whole stream, as the device runs it from power-on: float32 [frames, channels].

    The ``AudioMicrofrontend`` op runs the front end's C library sample by sample, frame by
    frame, carrying the noise-reduction and gain-control state from one frame to the next: the
    loop the device runs (``FrontendProcessSamples`` on each new stretch of audio). The op cannot
    keep that state between calls, so a stream is one call; a long recording is cut into
    ``segment_seconds`` segments, each started ``warmup_seconds`` early with those frames dropped,
    by which time the integer state has converged to the continuous run's (measured on the
    synthetic data: a 5 s warm-up leaves differences of up to 133 in the 16-bit output, 10 s
    up to 3 in 1e-5 of the values, 15 s and more none; a test checks it). Frame ``k`` covers
    samples ``[k * step, k * step + window)``, in every segment alike.
    """
    window, step = frame_timing(params)
    total = 0 if len(samples) < window else 1 + (len(samples) - window) // step
    segment_frames = max(1, segment_seconds * params["sample_rate"] // step)
    warmup_frames = warmup_seconds * params["sample_rate"] // step
    pieces = []
    for first in range(0, total, segment_frames):
        last = min(total, first + segment_frames)
        lead = min(first, warmup_frames)
        chunk = samples[(first - lead) * step:(last - 1) * step + window]
        frames = clip_features(tf.constant(chunk, tf.int16), params).numpy()
        pieces.append(frames[lead:lead + last - first])
    return np.concatenate(pieces) if pieces else np.zeros((0, params["num_channels"]), np.float32)
