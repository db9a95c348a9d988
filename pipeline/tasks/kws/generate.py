"""The default keyword-spotting dataset: synthetic speech in the Speech Commands layout.

Every clip is eSpeak NG speech (English voices with varied accents, voice
variants, speaking rate and pitch), shifted to a random place in the one-second
clip and mixed with generated background noise. With ``phrase_clips``, each
speaker also says everyday phrases, cut into one-second ``_unknown_`` clips. Speakers are split between train,
eval and test, never shared. The result is deterministic for a given seed and
settings, and is clearly labelled synthetic in its ``DATASET.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import random
import re
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from scipy import signal

from components.audio_example_gen import layout, wav
from pipeline.tasks.common import datasets
from pipeline.tasks.common.datasets import (assign_speaker_splits, publish_dataset,
                                            staging_dir, write_split_lists)
from pipeline.tasks.kws import speech

_SYNTH_TRIM_DBFS = -45.0  # eSpeak pads utterances with silence; cut it before placing the word

# Phrase cuts (``GenerationSpec.phrase_clips``): one-second stretches of everyday speech, as ``_unknown_``.
# A device hears speech that is not a command far more often than single unknown words, and a window of
# it holds word fragments and words that rhyme with commands (night, bright, cup). None of these
# sentences is one of the test streams' phrases (pipeline/tasks/kws/streams.py PHRASES); a phrase
# holding a configured keyword as a word is left out.
PHRASES_DIR = "_phrases_"
PHRASE_EDGE_SECONDS = 0.3   # a cut may start this much before the phrase or end this much after it
TRAINING_PHRASES = (
    "the night is cold and quiet", "a white kite in the sky", "the flight was quite long", "it is time for dinner",
    "I like the blue bike", "nice to meet you", "we need more light in here", "the dog barked all night",
    "that was a great fight", "write your name here", "keep the door closed", "my sister plays the piano",
    "the bus comes at nine", "a bright red apple", "I know that song", "the show was funny",
    "put the cup by the sink", "it was a lot of fun", "the shop closes early", "we have a new neighbour",
    "she bought some bread and milk", "the car is in the garage", "please pass the salt", "the baby is sleeping",
    "how was your day", "the snow fell last winter", "that sounds like a plan", "the clock is slow",
    "a quiet walk in the park", "my favourite colour is green", "the light turned green", "we should buy a sofa",
    "the children are playing outside", "open the box carefully", "it might rain later", "the coffee is too hot",
    "do you want some water", "the kettle is boiling", "lots of people came", "he rode his bike to town",
)


@dataclasses.dataclass(frozen=True)
class GenerationSpec:
    """What to generate; equal specs give byte-identical datasets."""

    words: Tuple[str, ...]
    unknown_words: Tuple[str, ...]
    speakers: int
    repetitions: int
    noise_seconds: int
    sample_rate: int = 16000
    clip_samples: int = 16000
    seed: int = 59185
    phrase_clips: int = 0     # per speaker: one-second cuts of TRAINING_PHRASES, in PHRASES_DIR (_unknown_)

    def fingerprint(self) -> str:
        data = dataclasses.asdict(self)
        if not data["phrase_clips"]:
            del data["phrase_clips"]   # specs without phrases fingerprint as before the field existed
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def phrases(self) -> Tuple[str, ...]:
        """TRAINING_PHRASES without those that hold a keyword as a word."""
        words = {w.lower() for w in self.words}
        return tuple(p for p in TRAINING_PHRASES if not words & set(re.findall(r"[\w']+", p.lower())))


@dataclasses.dataclass(frozen=True)
class SpeakerProfile:
    speaker_id: str
    voice: str
    rate: int
    pitch: int
    pitch_range: int


def speaker_profiles(spec: GenerationSpec) -> List[SpeakerProfile]:
    """Draws the speakers: a voice (accent and variant), speaking rate and pitch each."""
    rng = random.Random(spec.seed)
    profiles = []
    for i in range(spec.speakers):
        speaker_id = hashlib.sha1(f"{spec.seed}:{i}".encode()).hexdigest()[:8]
        voice = f"{rng.choice(speech.ENGLISH_VOICES)}+{rng.choice(speech.VOICE_VARIANTS)}"
        profiles.append(SpeakerProfile(speaker_id, voice, rate=rng.randint(120, 210),
                                       pitch=rng.randint(25, 75), pitch_range=rng.randint(30, 80)))
    return profiles


# ----------------------------------------------------------------------------- noise

def _normalise(x: np.ndarray, peak: float = 0.5) -> np.ndarray:
    return x * (peak / max(1e-9, float(np.max(np.abs(x)))))


def noise_bank(spec: GenerationSpec) -> Dict[str, np.ndarray]:
    """Generated background recordings, as float arrays in [-1, 1]."""
    rng = np.random.default_rng(spec.seed)
    n = spec.noise_seconds * spec.sample_rate
    t = np.arange(n) / spec.sample_rate
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / spec.sample_rate)
    freqs[0] = freqs[1]
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    brown = np.cumsum(rng.standard_normal(n))
    brown = signal.sosfilt(signal.butter(1, 20, "highpass", fs=spec.sample_rate, output="sos"), brown)
    mains = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
    hum = mains + 0.05 * white
    fan_band = signal.sosfilt(signal.butter(4, [200, 1200], "bandpass", fs=spec.sample_rate, output="sos"), white)
    fan = fan_band * (1 + 0.3 * np.sin(2 * np.pi * 3.1 * t))
    return {
        "white_noise.wav": _normalise(white, 0.4),
        "pink_noise.wav": _normalise(pink, 0.5),
        "brown_noise.wav": _normalise(brown, 0.5),
        "mains_hum.wav": _normalise(hum, 0.3),
        "fan.wav": _normalise(fan, 0.4),
    }


# ----------------------------------------------------------------------------- clips

_WORKER: Dict[str, object] = {}


def _init_worker(noise_dir: str, sample_rate: int) -> None:
    _WORKER["noise"] = {
        name: wav.read_wav(open(os.path.join(noise_dir, name), "rb").read(), sample_rate).astype(np.float64) / 32767
        for name in sorted(os.listdir(noise_dir))}


def _trim(samples: np.ndarray) -> np.ndarray:
    frame = 160
    level = np.array([wav.rms_dbfs(samples[i:i + frame]) for i in range(0, len(samples), frame)])
    voiced = np.nonzero(level > _SYNTH_TRIM_DBFS)[0]
    if len(voiced) == 0:
        return samples
    return samples[voiced[0] * frame:(voiced[-1] + 1) * frame]


def synthesize(tts: speech.Speaker, text: str, profile: SpeakerProfile, rng: np.random.Generator,
               sample_rate: int) -> np.ndarray:
    """``text`` said by ``profile`` (rate and pitch varied by ``rng``), silence trimmed, at ``sample_rate``:
    float samples, not normalised."""
    rate = int(profile.rate * rng.uniform(0.9, 1.1))
    pitch = int(np.clip(profile.pitch + rng.integers(-6, 7), 0, 100))
    raw = tts.say(text, profile.voice, rate=rate, pitch=pitch, pitch_range=profile.pitch_range,
                  seed=int(rng.integers(1, 2**31)))
    voiced = _trim(raw).astype(np.float64) / 32768.0
    return signal.resample_poly(voiced, sample_rate, tts.sample_rate)


def _clip_rng(spec: GenerationSpec, *parts: object) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha1(":".join(map(str, (spec.seed,) + parts)).encode()).hexdigest()[:12], 16))


def render_clip(tts: speech.Speaker, noise: Dict[str, np.ndarray], word: str, profile: SpeakerProfile,
                repetition: int, spec: GenerationSpec) -> np.ndarray:
    """Renders one clip of ``word`` by ``profile``: int16 samples of ``spec.clip_samples``."""
    rng = _clip_rng(spec, profile.speaker_id, word, repetition)
    speech_16k = synthesize(tts, word, profile, rng, spec.sample_rate)[: spec.clip_samples]
    speech_16k = _normalise(speech_16k, rng.uniform(0.2, 0.9))

    clip = np.zeros(spec.clip_samples)
    slack = spec.clip_samples - len(speech_16k)
    start = int(rng.integers(0, slack + 1)) if slack > 0 else 0
    clip[start:start + len(speech_16k)] = speech_16k
    return _mix_noise(clip, speech_16k, noise, rng, spec)


def render_phrase_clip(tts: speech.Speaker, noise: Dict[str, np.ndarray], profile: SpeakerProfile, index: int,
                       spec: GenerationSpec) -> np.ndarray:
    """Cut ``index`` of ``profile``'s phrases: one of ``spec.phrases()`` (drawn per speaker and cut), said
    whole, and a one-second stretch of it from a random place (up to PHRASE_EDGE_SECONDS before its start
    or after its end), mixed with noise like a word clip: int16 samples of ``spec.clip_samples``."""
    rng = _clip_rng(spec, profile.speaker_id, PHRASES_DIR, index)
    phrases = spec.phrases()
    speech_16k = synthesize(tts, phrases[int(rng.integers(len(phrases)))], profile, rng, spec.sample_rate)
    speech_16k = _normalise(speech_16k, rng.uniform(0.2, 0.9))
    edge = int(PHRASE_EDGE_SECONDS * spec.sample_rate)
    first = int(rng.integers(-edge, max(-edge, len(speech_16k) - spec.clip_samples + edge) + 1))
    clip = np.zeros(spec.clip_samples)
    lo, hi = max(0, first), min(len(speech_16k), first + spec.clip_samples)
    clip[lo - first:hi - first] = speech_16k[lo:hi]
    return _mix_noise(clip, speech_16k[lo:hi], noise, rng, spec)


def _mix_noise(clip: np.ndarray, speech_16k: np.ndarray, noise: Dict[str, np.ndarray], rng: np.random.Generator,
               spec: GenerationSpec) -> np.ndarray:
    """``clip`` with a stretch of one background of ``noise`` at 10 to 40 dB below ``speech_16k``'s level."""
    name = sorted(noise)[int(rng.integers(0, len(noise)))]
    bed = noise[name]
    offset = int(rng.integers(0, len(bed) - spec.clip_samples))
    snr_db = rng.uniform(10.0, 40.0)
    speech_rms = np.sqrt(np.mean(np.square(speech_16k))) + 1e-9
    segment = bed[offset:offset + spec.clip_samples]
    segment = segment * (speech_rms / (np.sqrt(np.mean(np.square(segment))) + 1e-9)) / (10 ** (snr_db / 20))
    return np.clip(np.round((clip + segment) * 32767), -32768, 32767).astype(np.int16)


def _render_speaker(job: Tuple[SpeakerProfile, Tuple[str, ...], GenerationSpec, str]) -> int:
    profile, words, spec, out_dir = job
    noise = _WORKER["noise"]
    # A fresh engine per speaker, saying a fixed sequence: the clips do not depend on
    # which worker rendered which speaker before.
    with speech.Speaker() as tts:
        for word in words:
            for repetition in range(spec.repetitions):
                samples = render_clip(tts, noise, word, profile, repetition, spec)
                path = os.path.join(out_dir, word, f"{profile.speaker_id}_nohash_{repetition}.wav")
                with open(path, "wb") as f:
                    f.write(wav.write_wav(samples, spec.sample_rate))
        for index in range(spec.phrase_clips if spec.phrases() else 0):
            samples = render_phrase_clip(tts, noise, profile, index, spec)
            with open(os.path.join(out_dir, PHRASES_DIR, f"{profile.speaker_id}_nohash_{index}.wav"), "wb") as f:
                f.write(wav.write_wav(samples, spec.sample_rate))
    return len(words) * spec.repetitions + (spec.phrase_clips if spec.phrases() else 0)


def generate_dataset(spec: GenerationSpec, out_dir: str, *, processes: Optional[int] = None,
                     progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, object]:
    """Writes the dataset to ``out_dir`` (replaced atomically) and returns its manifest.

    Args:
        spec: what to generate.
        out_dir: the dataset folder to create.
        processes: worker processes (default: one per core).
        progress: called as ``progress(done_clips, total_clips)``.
    """
    with staging_dir(out_dir) as staging:
        profiles = speaker_profiles(spec)
        splits = assign_speaker_splits([p.speaker_id for p in profiles])
        noise_dir = os.path.join(staging, layout.NOISE_DIR)
        os.makedirs(noise_dir)
        for name, samples in noise_bank(spec).items():
            with open(os.path.join(staging, layout.NOISE_DIR, name), "wb") as f:
                f.write(wav.write_wav(np.round(samples * 32767).astype(np.int16), spec.sample_rate))

        all_words = tuple(spec.words) + tuple(w for w in spec.unknown_words if w not in spec.words)
        phrase_clips = spec.phrase_clips if spec.phrases() else 0
        for word in all_words + ((PHRASES_DIR,) if phrase_clips else ()):
            os.makedirs(os.path.join(staging, word))
        jobs = [(p, all_words, spec, staging) for p in profiles]
        total = len(profiles) * (len(all_words) * spec.repetitions + phrase_clips)
        done = 0
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes or os.cpu_count() or 1, initializer=_init_worker,
                      initargs=(noise_dir, spec.sample_rate)) as pool:
            for n in pool.imap_unordered(_render_speaker, jobs):
                done += n
                if progress:
                    progress(done, total)

        lists = {split: [] for split in layout.SPLIT_LISTS}
        for word in all_words:
            for p in profiles:
                split = splits[p.speaker_id]
                if split in lists:
                    lists[split].extend(f"{word}/{p.speaker_id}_nohash_{r}.wav" for r in range(spec.repetitions))
        for p in profiles:
            if splits[p.speaker_id] in lists:
                lists[splits[p.speaker_id]].extend(f"{PHRASES_DIR}/{p.speaker_id}_nohash_{i}.wav"
                                                   for i in range(phrase_clips))
        write_split_lists(staging, lists)

        manifest = {
            "synthetic": True,
            "description": ("SYNTHETIC keyword-spotting data: eSpeak NG speech with generated background "
                            "noise, in the Speech Commands layout. Not recorded from people; a model "
                            "trained on it is a pipeline demonstration, not a product."),
            "fingerprint": spec.fingerprint(),
            "spec": dataclasses.asdict(spec),
            "speakers": {p.speaker_id: {**dataclasses.asdict(p), "split": splits[p.speaker_id]}
                         for p in profiles},
            "clips": total,
        }
        return publish_dataset(staging, out_dir, manifest)


def ensure_dataset(spec, out_dir: str, **kwargs) -> bool:
    """Generates the dataset unless ``out_dir`` already holds this very one; True when it generated."""
    return datasets.ensure_dataset(spec, out_dir, generate_dataset, **kwargs)


def spec_of(manifest: Dict[str, object]) -> Optional[GenerationSpec]:
    """The spec a generated dataset's manifest (``DATASET.json``) records; None when it records none
    that this version can read."""
    recorded = manifest.get("spec")
    if not isinstance(recorded, dict):
        return None
    try:
        return GenerationSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})
    except TypeError:
        return None


def split_speakers(spec: GenerationSpec, split: str) -> List[SpeakerProfile]:
    """The speakers ``generate_dataset`` puts in ``split`` (train, eval or test)."""
    profiles = speaker_profiles(spec)
    splits = assign_speaker_splits([p.speaker_id for p in profiles])
    return [p for p in profiles if splits[p.speaker_id] == split]
