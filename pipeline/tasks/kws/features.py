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


def batch_features(audio_bytes: tf.Tensor, params: Dict[str, Any], clip_samples: int) -> tf.Tensor:
    """Features of a batch: raw little-endian int16 PCM strings [batch] or [batch, 1] to [batch, frames, channels]."""
    samples = tf.reshape(tf.io.decode_raw(audio_bytes, tf.int16, little_endian=True), [-1, clip_samples])
    frames, channels = feature_shape(params, clip_samples)
    return tf.map_fn(lambda clip: clip_features(clip, params), samples,
                     fn_output_signature=tf.TensorSpec([frames, channels], tf.float32))


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
