"""Speech synthesis with eSpeak NG through its C API (ctypes), for the synthetic dataset.

The library and its voice data come from the PyPI package ``espeakng-loader``; the
Debian package ``libespeak-ng1`` works as well. Synthesis is deterministic for a
given voice, variant, rate and pitch, which keeps generated datasets reproducible.
"""

from __future__ import annotations

import _ctypes
import ctypes
import os
import shutil
import tempfile
from typing import Optional

import numpy as np

from pipeline.tasks.base import DataGenerationError

# espeak_AUDIO_OUTPUT and espeak_PARAMETER values from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_POS_CHARACTER = 1
_CHARS_UTF8 = 1

# espeak-ng copies its data path into a fixed 160-byte buffer and exits the whole
# process when the path does not fit, so long paths are served from a short copy.
_MAX_DATA_PATH = 150

ENGLISH_VOICES = (
    "en-us", "en", "en-029", "en-gb-scotland", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us-nyc",
)
VOICE_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
)


class SpeechSynthesisError(DataGenerationError):
    """eSpeak NG could not be loaded or refused to speak."""


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Speaker:
    """An eSpeak NG engine with a private copy of the library.

    eSpeak NG keeps synthesis state in C globals that even re-initialising does not
    reset, so what it says depends on what it said before. Each Speaker loads its
    own copy of the shared library (fresh globals), which makes a sequence of
    utterances reproducible; use it as a context manager, or call ``close``.

    Args:
        library_path: path to ``libespeak-ng.so``; defaults to the one bundled by
            ``espeakng-loader``.
        data_path: path to ``espeak-ng-data``; defaults likewise.
    """

    def __init__(self, library_path: Optional[str] = None, data_path: Optional[str] = None):
        if library_path is None or data_path is None:
            try:
                import espeakng_loader
            except ImportError as err:
                raise SpeechSynthesisError(
                    "eSpeak NG is needed to generate the synthetic keyword dataset, and the "
                    "'espeakng-loader' package that bundles it is not installed. Run the "
                    "command through 'make' (which installs requirements.lock), or "
                    "'pip install espeakng-loader'.") from err
            library_path = library_path or espeakng_loader.get_library_path()
            data_path = data_path or espeakng_loader.get_data_path()
        self._private_dir = tempfile.mkdtemp(prefix="tinyml-espeak-lib-")
        private_copy = os.path.join(self._private_dir, os.path.basename(library_path))
        shutil.copyfile(library_path, private_copy)
        self._lib = ctypes.CDLL(private_copy)
        self._libc = ctypes.CDLL(None)
        self._set_rand_seed = getattr(self._lib, "espeak_ng_SetRandSeed", None)
        if self._set_rand_seed is not None:
            self._set_rand_seed.argtypes = [ctypes.c_long]
        self._data_path = _short_data_path(data_path)
        self._samples: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive on self
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data_path.encode(), 0)
        if rate <= 0:
            raise SpeechSynthesisError(
                f"eSpeak NG failed to initialise with data at {self._data_path}.")
        self.sample_rate = int(rate)
        self._lib.espeak_SetSynthCallback(self._callback)

    def close(self) -> None:
        """Unloads this engine's library copy."""
        if self._lib is not None:
            self._lib.espeak_Terminate()
            _ctypes.dlclose(self._lib._handle)
            self._lib = None
            shutil.rmtree(self._private_dir, ignore_errors=True)

    def __enter__(self) -> "Speaker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _collect(self, wav, num_samples, _events):
        if num_samples > 0 and wav:
            self._samples.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def say(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int = 50,
            seed: int = 1) -> np.ndarray:
        """Synthesises ``text`` and returns int16 samples at ``self.sample_rate``.

        Args:
            text: what to say.
            voice: an eSpeak NG voice name, optionally with ``+variant``.
            rate: speaking rate in words per minute (80 to 450).
            pitch: base pitch, 0 to 100.
            pitch_range: pitch range, 0 (monotone) to 100.
            seed: seeds the noise of breathy voices (eSpeak's own generator and libc's
                ``rand``, which it also uses).
        """
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SpeechSynthesisError(f"eSpeak NG has no voice named '{voice}'.")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch),
                             (_PARAM_RANGE, pitch_range), (_PARAM_VOLUME, 100)):
            self._lib.espeak_SetParameter(param, int(value), 0)
        self._samples = []
        if self._set_rand_seed is not None:
            self._set_rand_seed(seed)
        self._libc.srand(seed)
        encoded = text.encode("utf-8") + b"\0"
        err = self._lib.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise SpeechSynthesisError(f"eSpeak NG failed to say '{text}' (error {err}).")
        self._lib.espeak_Synchronize()
        if not self._samples:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._samples).astype(np.int16)


def _short_data_path(data_path: str) -> str:
    if len(data_path) <= _MAX_DATA_PATH:
        return data_path
    short = os.path.join(tempfile.gettempdir(), "tinyml-espeak-data")
    if not os.path.isdir(short):
        staging = tempfile.mkdtemp(prefix="tinyml-espeak-")
        shutil.copytree(data_path, os.path.join(staging, "data"))
        try:
            os.replace(os.path.join(staging, "data"), short)
        except OSError:
            pass  # another process won the race; its copy is identical
        shutil.rmtree(staging, ignore_errors=True)
    return short
