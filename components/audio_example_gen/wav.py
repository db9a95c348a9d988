"""Reading and writing 16-bit PCM WAV clips, and the pad/trim rule for clip length.

Pure Python and NumPy: no TensorFlow, so it is tested in milliseconds and can run
in any Beam worker.
"""

from __future__ import annotations

import io
import struct
import wave

import numpy as np


class WavError(ValueError):
    """A clip that is not a readable mono 16-bit PCM WAV at the expected rate."""


def read_wav(data: bytes, expected_rate: int) -> np.ndarray:
    """Decodes a mono 16-bit PCM WAV file.

    Args:
        data: the whole file's bytes.
        expected_rate: the sample rate the clip must have, in Hz.

    Returns:
        The samples as a 1-D int16 array.

    Raises:
        WavError: with a short reason when the file is empty, not a RIFF/WAVE file,
            not PCM, not mono, not 16-bit, at another rate, or has no samples.
    """
    if not data:
        raise WavError("empty file")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            frames = reader.readframes(reader.getnframes())
    except wave.Error as err:
        # The wave module rejects non-PCM encodings (e.g. IEEE float, format 3) here.
        raise WavError(f"unreadable WAV ({err})") from err
    except (EOFError, struct.error) as err:
        raise WavError("truncated WAV header") from err
    if channels != 1:
        raise WavError(f"{channels} channels, expected mono")
    if width != 2:
        raise WavError(f"{8 * width}-bit samples, expected 16-bit PCM")
    if rate != expected_rate:
        raise WavError(f"sample rate {rate} Hz, expected {expected_rate} Hz")
    if len(frames) < 2:
        raise WavError("no audio samples")
    usable = len(frames) - len(frames) % 2
    return np.frombuffer(frames[:usable], dtype="<i2").astype(np.int16)


def write_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """Encodes int16 samples as a mono 16-bit PCM WAV file and returns its bytes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buffer.getvalue()


def fit_to_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Applies the clip-length rule: zero-pad at the end, or keep the first ``length`` samples.

    This is what ``tf.audio.decode_wav(desired_samples=length)`` does, and so what
    TensorFlow's Speech Commands training and TFLite Micro's micro_speech assume.
    """
    if len(samples) >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - len(samples), dtype=samples.dtype)])


def rms_dbfs(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to int16 full scale (-100 for digital silence)."""
    if len(samples) == 0:
        return -100.0
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    if rms <= 0.0:
        return -100.0
    return max(-100.0, 20.0 * np.log10(rms / 32768.0))
