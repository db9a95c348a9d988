import struct

import numpy as np
import pytest

from components.audio_example_gen import wav


def test_roundtrip_keeps_samples_exactly():
    samples = (np.sin(np.arange(16000) / 10) * 20000).astype(np.int16)
    assert np.array_equal(wav.read_wav(wav.write_wav(samples, 16000), 16000), samples)


def _header(fmt=1, channels=1, rate=16000, bits=16, frames=b"\x00\x01" * 10):
    block = channels * bits // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", len(frames)) + frames
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("data,reason", [
    (b"", "empty file"),
    (b"ID3\x03 this is an mp3", "not a RIFF/WAVE file"),
    (_header(channels=2, frames=b"\x00" * 40), "2 channels"),
    (_header(bits=8, frames=b"\x80" * 20), "8-bit"),
    (_header(rate=44100), "sample rate 44100 Hz"),
    (_header(fmt=3, bits=32, frames=b"\x00" * 40), "unreadable WAV"),
    (_header(frames=b""), "no audio samples"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt ", "WAV"),
])
def test_bad_files_raise_wav_error_with_reason(data, reason):
    with pytest.raises(wav.WavError, match=reason):
        wav.read_wav(data, 16000)


def test_fit_to_length_pads_at_end_and_keeps_the_start():
    short = np.arange(1, 11, dtype=np.int16)
    padded = wav.fit_to_length(short, 16)
    assert len(padded) == 16 and list(padded[:10]) == list(short) and not padded[10:].any()
    long = np.arange(40, dtype=np.int16)
    assert list(wav.fit_to_length(long, 16)) == list(range(16))


def test_rms_dbfs():
    assert wav.rms_dbfs(np.zeros(100, np.int16)) == -100.0
    full = np.full(100, 32767, np.int16)
    assert wav.rms_dbfs(full) == pytest.approx(0.0, abs=0.01)
    assert wav.rms_dbfs((full // 10).astype(np.int16)) == pytest.approx(-20.0, abs=0.05)
