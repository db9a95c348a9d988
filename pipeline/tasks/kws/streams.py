"""Keyword spotting's test streams: long recordings with keywords at known times.

This module is the keyword-spotting family's *stream source* for the StreamingEvaluator
(``components/streaming_evaluator``), which calls ``plan`` once, ``load`` once per stream
(in worker processes, so nothing here imports TensorFlow at module level) and ``features``
on each loaded stream.

Two kinds of stream:

- **Synthetic** (the default): minutes of generated background noise (white, pink, brown,
  mains hum, fan; one per stream, its level drifting a few dB) with speech inserted at known
  times: keywords (each as often as the others), the unknown words and short phrases that
  contain no keyword, every utterance at one of several SNRs against the background under
  it. The voices are the test split's speakers of the synthetic dataset (never heard in
  training); with a real dataset they are speakers drawn the same way from the config's
  seed, so none of them is in the training data either. Deterministic from the seed.
- **Recordings** you bring: a folder of 16 kHz mono 16-bit WAV files, each with a label
  file ``<name>.labels.txt`` beside it (Audacity's label format, see
  ``components/streaming_evaluator/labels_file.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from components.audio_example_gen import wav
from components.streaming_evaluator import labels_file
from components.streaming_evaluator.metrics import Event
from components.streaming_evaluator.source import LoadedStream, StreamSourceError

LABELS_SUFFIX = ".labels.txt"
MAX_STREAM_SECONDS = 300          # synthetic audio comes in streams of at most five minutes
BACKGROUND_DBFS = (-50.0, -40.0)  # the background's RMS level, drawn per stream
LEVEL_DRIFT_DB = 3.0              # and its slow drift
GAP_SECONDS = (1.0, 4.0)          # background alone between two utterances
KINDS = ("keyword", "unknown", "phrase")
KIND_SHARES = (0.5, 0.3, 0.2)
CROSSFADE_SAMPLES = 320
NOISE_SECONDS = 20              # of each noise kind, looped
# Everyday phrases as non-keyword speech; any holding a configured keyword as a word is left out.
PHRASES = (
    "what time is it", "please open the window", "the weather is nice today", "can you hear me",
    "I would like a cup of tea", "where did I put my keys", "call me later tonight", "the train leaves at seven",
    "turn the music louder", "how far is the station", "she reads a book every evening",
    "we walked along the river", "this is a quiet room", "my phone battery is low", "the kitchen light is bright",
    "set a timer for ten minutes", "remind me tomorrow morning", "thank you very much", "what a lovely garden",
    "the meeting starts soon",
)


@dataclasses.dataclass(frozen=True)
class StreamRecipe:
    """What the synthetic streams are made of; equal recipes give identical streams."""

    keywords: Tuple[str, ...]
    unknown_words: Tuple[str, ...]
    speakers: Tuple[Dict[str, Any], ...]   # generate.SpeakerProfile fields
    minutes: float
    snr_db: Tuple[float, ...]
    seed: int
    sample_rate: int = 16000
    speakers_source: str = "test split"
    phrases: Tuple[str, ...] = PHRASES
    shift: str = ""        # a field shift (SHIFTS): a background the dataset's noise bank lacks; "" none

    def stream_seconds(self) -> List[float]:
        """The length of every stream: the minutes in equal streams of at most five minutes."""
        total = self.minutes * 60.0
        count = max(1, math.ceil(total / MAX_STREAM_SECONDS))
        return [total / count] * count

    def usable_phrases(self) -> Tuple[str, ...]:
        words = {k.lower() for k in self.keywords}
        return tuple(p for p in self.phrases if not words & set(re.findall(r"[\w']+", p.lower())))

    def to_json(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        if not data["shift"]:
            del data["shift"]   # recipes without a shift read (and fingerprint) as before it existed
        return data

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "StreamRecipe":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:12], 16))


def _looped(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``noise`` played from random places, joined with short crossfades."""
    out = np.zeros(n + CROSSFADE_SAMPLES)
    ramp = np.linspace(0.0, 1.0, CROSSFADE_SAMPLES)
    position = 0
    while position < n:
        offset = int(rng.integers(0, len(noise) // 2))
        piece = noise[offset:].copy()
        if position:
            piece[:CROSSFADE_SAMPLES] *= ramp
            out[position:position + CROSSFADE_SAMPLES] *= ramp[::-1]
        end = min(len(out), position + len(piece))
        out[position:end] += piece[:end - position]
        position = end - CROSSFADE_SAMPLES
    return out[:n]


# Field shifts the fleet simulator can apply (pipeline/fleet.py): a background the training data
# never had, louder than the dataset's backgrounds (its level is raised by SHIFT_LEVEL_DB).
SHIFTS = {"rain": "rain on a window: crackling impulses, high-passed above 2.5 kHz"}
SHIFT_LEVEL_DB = 12.0


def shift_noise(kind: str, n: int, sample_rate: int, seed: int) -> np.ndarray:
    """``n`` samples of the shift background ``kind`` (float, normalised)."""
    from scipy import signal

    if kind not in SHIFTS:
        raise StreamSourceError(f"Unknown field shift '{kind}'; the shifts are {', '.join(sorted(SHIFTS))}.")
    rng = _rng(seed, "shift", kind)
    drops = (rng.random(n) < 0.004) * rng.exponential(1.0, n)           # impulses of varying strength
    decay = np.exp(-np.arange(int(0.004 * sample_rate)) / (0.0008 * sample_rate))
    crackle = signal.fftconvolve(drops * rng.standard_normal(n), decay)[:n] + 0.05 * rng.standard_normal(n)
    high = signal.sosfilt(signal.butter(4, 2500, "highpass", fs=sample_rate, output="sos"), crackle)
    return high / (np.sqrt(np.mean(np.square(high))) + 1e-12)


def background(recipe: StreamRecipe, index: int, n: int) -> Tuple[np.ndarray, str]:
    """The stream's background noise (float, full scale 1.0) and its kind: one kind of the dataset's
    noise bank, looped from random places, its level drifting slowly (in 10 ms steps); with a
    ``shift``, the shift's background instead, louder."""
    from pipeline.tasks.kws import generate

    rng = _rng(recipe.seed, "background", index)
    if recipe.shift:
        noise = shift_noise(recipe.shift, n, recipe.sample_rate, recipe.seed + index)
        return noise * 10 ** ((rng.uniform(*BACKGROUND_DBFS) + SHIFT_LEVEL_DB) / 20), recipe.shift
    bank = generate.noise_bank(generate.GenerationSpec(words=(), unknown_words=(), speakers=0, repetitions=0,
                                                       noise_seconds=NOISE_SECONDS, sample_rate=recipe.sample_rate,
                                                       seed=recipe.seed + 1 + index))
    kind = sorted(bank)[index % len(bank)]
    noise = _looped(bank[kind], n, rng)
    noise /= np.sqrt(np.mean(np.square(noise))) + 1e-12
    block = recipe.sample_rate // 100
    t = np.arange(-(-n // block)) / 100.0
    drift_db = LEVEL_DRIFT_DB * np.sin(2 * np.pi * t / rng.uniform(20.0, 60.0) + rng.uniform(0, 2 * np.pi))
    level_db = rng.uniform(*BACKGROUND_DBFS) + drift_db
    return noise * np.repeat(10 ** (level_db / 20), block)[:n], os.path.splitext(kind)[0]


def render_stream(recipe: StreamRecipe, index: int) -> LoadedStream:
    """Synthetic stream ``index`` of ``recipe``: int16 samples and the ground truth of every utterance."""
    from pipeline.tasks.kws import generate, speech

    seconds = recipe.stream_seconds()[index]
    n = int(round(seconds * recipe.sample_rate))
    mix, noise_kind = background(recipe, index, n)
    rng = _rng(recipe.seed, "events", index)
    profiles = [generate.SpeakerProfile(**p) for p in recipe.speakers]
    phrases = recipe.usable_phrases()
    kinds = [k for k in KINDS if k == "keyword" or (k == "unknown" and recipe.unknown_words)
             or (k == "phrase" and phrases)]
    shares = np.array([KIND_SHARES[KINDS.index(k)] for k in kinds])
    keyword_queue: List[str] = []
    events: List[Event] = []
    position = int(rng.uniform(*GAP_SECONDS) * recipe.sample_rate)
    with speech.Speaker() as tts:
        while True:
            kind = kinds[int(rng.choice(len(kinds), p=shares / shares.sum()))]
            if kind == "keyword":
                if not keyword_queue:
                    keyword_queue = [recipe.keywords[i] for i in rng.permutation(len(recipe.keywords))]
                text = label = keyword_queue.pop()
            else:
                pool = recipe.unknown_words if kind == "unknown" else phrases
                text = label = pool[int(rng.integers(len(pool)))]
            profile = profiles[int(rng.integers(len(profiles)))]
            snr_db = float(recipe.snr_db[int(rng.integers(len(recipe.snr_db)))])
            utterance = generate.synthesize(tts, text, profile, rng, recipe.sample_rate)
            end = position + len(utterance)
            if end > n - recipe.sample_rate // 2 or len(utterance) == 0:
                break
            under = np.sqrt(np.mean(np.square(mix[position:end])))   # the background's level under the utterance
            gain = under * 10 ** (snr_db / 20) / (np.sqrt(np.mean(np.square(utterance))) + 1e-12)
            mix[position:end] += utterance * gain
            events.append(Event(label=label, start_ms=position * 1000 // recipe.sample_rate,
                                end_ms=-(-end * 1000 // recipe.sample_rate), snr_db=snr_db, speaker=profile.speaker_id))
            position = end + int(rng.uniform(*GAP_SECONDS) * recipe.sample_rate)
    samples = np.clip(np.round(mix * 32767), -32768, 32767).astype(np.int16)
    return LoadedStream(name=f"stream_{index:02d}", samples=samples, sample_rate=recipe.sample_rate,
                        events=tuple(events), background=noise_kind)


def read_recording(wav_path: str, labels_path: Optional[str], sample_rate: int) -> LoadedStream:
    """A recording you bring, and its label file (none: keyword-free audio).

    Raises:
        StreamSourceError: naming the file and the fix.
    """
    try:
        samples = wav.read_wav(_read_bytes(wav_path), sample_rate)
    except wav.WavError as err:
        raise StreamSourceError(
            f"Recording {wav_path} cannot be used: {err}. Streams must be {sample_rate} Hz mono 16-bit PCM WAV, "
            f"as the device's microphone delivers them; convert with, for example, "
            f"'ffmpeg -i IN -ac 1 -ar {sample_rate} -sample_fmt s16 OUT.wav'.") from None
    except OSError as err:
        raise StreamSourceError(f"Recording {wav_path} cannot be read ({err}).") from None
    events: Tuple[Event, ...] = ()
    if labels_path:
        try:
            text = _read_bytes(labels_path).decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise StreamSourceError(f"Label file {labels_path} cannot be read as UTF-8 text ({err}).") from None
        try:
            events = tuple(labels_file.parse(text, labels_path, duration_s=len(samples) / sample_rate))
        except labels_file.LabelFileError as err:
            raise StreamSourceError(str(err)) from None
    name = os.path.splitext(os.path.basename(wav_path))[0]
    return LoadedStream(name=name, samples=samples, sample_rate=sample_rate, events=events, background="recorded")


def _read_bytes(path: str) -> bytes:
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def _list_recordings(folder: str) -> List[str]:
    if "://" in folder:
        import tensorflow as tf

        names = tf.io.gfile.listdir(folder)
    else:
        names = os.listdir(folder)
    return sorted(n for n in names if n.lower().endswith(".wav"))


# ----------------------------------------------------------------------------- the stream source


def settings(recipe: Optional[StreamRecipe], recordings: Optional[str], frontend: Dict[str, Any],
             window_frames: int, files: Sequence[Tuple[str, Optional[str]]] = ()) -> Dict[str, Any]:
    """The StreamingEvaluator's ``source_settings`` for keyword spotting: the synthetic ``recipe``, or
    the ``recordings`` folder, or ``files`` (WAV path, label file path or None) given one by one."""
    from pipeline.tasks.kws import features

    window, step = features.frame_timing(frontend)
    return {"recipe": recipe.to_json() if recipe else None, "recordings": recordings or None,
            "files": _file_list(files), "frontend": frontend, "sample_rate": frontend["sample_rate"],
            "frames": {"per_window": window_frames, "stride_ms": step * 1000 // frontend["sample_rate"],
                       "length_ms": window * 1000 // frontend["sample_rate"]}}


def for_files(source_settings: Dict[str, Any], files: Sequence[Tuple[str, Optional[str]]]) -> Dict[str, Any]:
    """``source_settings`` (e.g. those a release was evaluated with: its front end) for other recordings."""
    return {**source_settings, "recipe": None, "recordings": None, "files": _file_list(files)}


def _file_list(files: Sequence[Tuple[str, Optional[str]]]) -> List[Dict[str, Optional[str]]]:
    return [{"wav": wav_path, "labels": labels_path} for wav_path, labels_path in files]


def plan(source_settings: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One job per stream: the files given, the recordings of the folder, or the recipe's synthetic streams."""
    folder = source_settings.get("recordings")
    sample_rate = source_settings["sample_rate"]
    if source_settings.get("files"):
        return [{**f, "sample_rate": sample_rate} for f in source_settings["files"]]
    if folder:
        try:
            names = _list_recordings(folder)
        except OSError as err:
            raise StreamSourceError(f"The recordings folder {folder} cannot be listed ({err}). Point "
                                    "streaming.recordings at a folder of WAV files with their label files.") from None
        if not names:
            raise StreamSourceError(f"The recordings folder {folder} holds no .wav file. Put the long recordings "
                                    f"there, each with its label file <name>{LABELS_SUFFIX}.")
        jobs = []
        for name in names:
            labels_path = os.path.join(folder, os.path.splitext(name)[0] + LABELS_SUFFIX)
            if not _exists(labels_path):
                raise StreamSourceError(
                    f"Recording {os.path.join(folder, name)} has no label file {labels_path}. Write one (one line per "
                    "keyword occurrence: start<TAB>end<TAB>label, seconds; Audacity's 'Export Labels' writes it), "
                    "or an empty one if the recording holds no keyword.")
            jobs.append({"wav": os.path.join(folder, name), "labels": labels_path, "sample_rate": sample_rate})
        return jobs
    recipe = StreamRecipe.from_json(source_settings["recipe"])
    return [{"recipe": recipe.to_json(), "index": i} for i in range(len(recipe.stream_seconds()))]


def _exists(path: str) -> bool:
    if "://" in path:
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def load(job: Dict[str, Any]) -> LoadedStream:
    """The stream of one job (runs in a worker process)."""
    if "wav" in job:
        return read_recording(job["wav"], job.get("labels"), job["sample_rate"])
    return render_stream(StreamRecipe.from_json(job["recipe"]), int(job["index"]))


def features(samples: np.ndarray, source_settings: Dict[str, Any]) -> np.ndarray:
    """The front end over the whole stream (``features.stream_features``)."""
    from pipeline.tasks.kws import features as frontend

    return frontend.stream_features(samples, source_settings["frontend"])


def composition(source_settings: Dict[str, Any]) -> Dict[str, Any]:
    """What the streams are made of, for the report and the model card."""
    if source_settings.get("files"):
        return {"synthetic": False, "recordings": ", ".join(f["wav"] for f in source_settings["files"])}
    if source_settings.get("recordings"):
        return {"synthetic": False, "recordings": source_settings["recordings"]}
    recipe = StreamRecipe.from_json(source_settings["recipe"])
    return {"synthetic": True, "minutes": recipe.minutes, "streams": len(recipe.stream_seconds()),
            "snr_db": list(recipe.snr_db), "speakers": len(recipe.speakers), "speakers_source": recipe.speakers_source,
            "keywords": list(recipe.keywords), "unknown_words": list(recipe.unknown_words),
            "phrases": len(recipe.usable_phrases()), "seed": recipe.seed,
            "description": ("SYNTHETIC streams: generated background noise (white, pink, brown, mains hum, fan) with "
                            f"eSpeak NG speech of {len(recipe.speakers)} speakers ({recipe.speakers_source}) at "
                            f"SNRs of {', '.join(f'{s:g}' for s in recipe.snr_db)} dB: keywords, unknown words and "
                            "phrases without keywords.")}


def write_streams(recipe: StreamRecipe, out_dir: str) -> List[str]:
    """Writes the recipe's streams as WAV files with their label files; returns the WAV paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for index in range(len(recipe.stream_seconds())):
        stream = render_stream(recipe, index)
        path = os.path.join(out_dir, stream.name + ".wav")
        with open(path, "wb") as f:
            f.write(wav.write_wav(stream.samples, stream.sample_rate))
        with open(os.path.join(out_dir, stream.name + LABELS_SUFFIX), "w", encoding="utf-8") as f:
            f.write(labels_file.render(stream.events))
        paths.append(path)
    with open(os.path.join(out_dir, "STREAMS.json"), "w") as f:
        json.dump({"recipe": recipe.to_json()}, f, indent=2, sort_keys=True)
    return paths
