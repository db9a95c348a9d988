"""Labelled field recordings as a new span of keyword-spotting training data.

What a labelling campaign on a shifted fleet yields, simulated: continuous audio in the field's
condition (a field shift's background at low SNR, ``streams.SHIFTS``), said by voices the
dataset does not have, labelled by the simulator's ground truth (the streams' events; a real
campaign has people mark the utterances in uploaded audio). Every single-word utterance becomes
a one-second clip centred on it, in the Speech Commands layout the AudioExampleGen reads: a
folder per word (keywords, and other words that become ``_unknown_``), the stretches between
utterances as ``_background_noise_`` recordings (``_silence_`` is cut from them), split lists by
speaker (so the span's test split holds voices its train split lacks) and a ``DATASET.json``
that says it is synthetic and how it was labelled.

Speech that is not a command is labelled too, as the training data has it: each phrase said in the
campaign gives a one-second cut from a random place in it (``generate.PHRASES_DIR``, ``_unknown_``),
as ``generate.render_phrase_clip`` cuts the dataset's. The campaign's people say the dataset's
training phrases (``GenerationSpec.phrases``), never the test streams' (``streams.PHRASES``): the
streaming evaluation's phrases stay unseen by every model it judges.

``write_sample_span`` is the path real data takes: the labelled one-second windows devices uploaded
with their telemetry (``sample`` records whose ``label`` a labelling step filled in) become a span
in the same layout, split by device; windows labelled ``_silence_`` become background recordings.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from components.audio_example_gen import layout, wav
from components.errors import PipelineInputError
from pipeline.tasks.common.datasets import (LabelledSample, assign_speaker_splits, assign_splits_keeping,
                                            publish_dataset, staging_dir, write_split_lists)

GROUND_TRUTH = "fleet simulator ground truth (synthetic streams' labels)"
VOICE_SEED_OFFSET = 7919   # the campaign's voices are drawn apart from the dataset's
MIN_BACKGROUND_MS = 1000   # shorter stretches between utterances are not kept as background


@dataclasses.dataclass(frozen=True)
class FieldCampaign:
    """What to collect: ``minutes`` of audio under ``shift`` from ``voices`` new voices, from ``seed``."""

    shift: str
    minutes: float = 60.0
    voices: int = 20
    seed: int = 1


def recipe(config, campaign: FieldCampaign):
    """The campaign's streams: the fleet's field recipe under the shift, with voices of their own."""
    from pipeline.tasks.kws import generate

    family = config.family
    base = family.stream_recipe(config)
    spec = family.generation_spec(config)
    voices = generate.speaker_profiles(dataclasses.replace(
        spec, speakers=int(campaign.voices), seed=spec.seed + VOICE_SEED_OFFSET + int(campaign.seed)))
    return dataclasses.replace(
        base, minutes=float(campaign.minutes), seed=int(campaign.seed), shift=campaign.shift, snr_db=(0.0, 5.0),
        phrases=spec.phrases(),
        speakers=tuple({**dataclasses.asdict(v), "speaker_id": f"field{campaign.seed}-{v.speaker_id}"} for v in voices),
        speakers_source=f"{campaign.voices} synthetic eSpeak NG voices drawn for the field campaign, none of them "
                        "the dataset's")


def _clip(samples: np.ndarray, centre: int, length: int) -> np.ndarray:
    start = int(np.clip(centre - length // 2, 0, max(0, len(samples) - length)))
    return wav.fit_to_length(samples[start:start + length], length)


def _make_span_folders(staging: str, words: Sequence[str]) -> None:
    """The background folder and every word's folder: the ExampleGen wants each word's in every span, even empty."""
    os.makedirs(os.path.join(staging, layout.NOISE_DIR))
    for word in words:
        os.makedirs(os.path.join(staging, word), exist_ok=True)


def _phrase_cut_centre(start: int, end: int, length: int, rate: int, rng: np.random.Generator) -> int:
    """The centre of a one-second cut from a random place in a phrase (up to PHRASE_EDGE_SECONDS outside it)."""
    from pipeline.tasks.kws import generate

    edge = int(generate.PHRASE_EDGE_SECONDS * rate)
    first = int(rng.integers(start - edge, max(start - edge, end + edge - length) + 1))
    return first + length // 2


def write_field_span(config, campaign: FieldCampaign, out_dir: str,
                     log: Callable[[str], None] = lambda m: None) -> Dict[str, Any]:
    """Renders the campaign's streams and writes their labelled clips as a dataset in ``out_dir``.

    Returns:
        the span's manifest (also its ``DATASET.json``): clips per split and label, where they come from.
    """
    from pipeline.tasks.kws import generate, streams

    field = recipe(config, campaign)
    rate, length = config.data.sample_rate, config.data.clip_samples
    wanted = {w.lower(): w for w in (*config.data.words, *field.unknown_words)}
    phrases = {p.lower() for p in field.phrases}
    clips: List[tuple] = []   # (relative path, speaker, label)
    with staging_dir(out_dir) as staging:
        _make_span_folders(staging, config.data.words)
        for index in range(len(field.stream_seconds())):
            stream = streams.render_stream(field, index)
            samples = stream.samples
            keep = np.ones(len(samples), dtype=bool)
            cuts = np.random.default_rng([int(campaign.seed), index])
            for n, event in enumerate(stream.events):
                start, end = event.start_ms * rate // 1000, event.end_ms * rate // 1000
                keep[max(0, start - rate // 10):end + rate // 10] = False
                word = wanted.get(event.label.lower())
                if event.label.lower() in phrases:
                    word, centre = generate.PHRASES_DIR, _phrase_cut_centre(start, end, length, rate, cuts)
                elif word is None or end - start > length:
                    continue   # an utterance longer than a clip
                else:
                    centre = (start + end) // 2
                relative = f"{word}/{event.speaker}_nohash_{stream.name}_{n:04d}.wav"
                os.makedirs(os.path.join(staging, word), exist_ok=True)
                with open(os.path.join(staging, relative), "wb") as f:
                    f.write(wav.write_wav(_clip(samples, centre, length), rate))
                clips.append((relative, event.speaker, word))
            background = samples[keep]   # what the field hears between words, joined
            if len(background) >= MIN_BACKGROUND_MS * rate // 1000:
                with open(os.path.join(staging, layout.NOISE_DIR, f"{stream.name}.wav"), "wb") as f:
                    f.write(wav.write_wav(background, rate))
            log(f"  {stream.name} ({stream.background}): {stream.duration_s:.0f} s, {len(stream.events)} utterances")
        if not clips:
            raise PipelineInputError(f"The {campaign.minutes:g}-minute campaign under '{campaign.shift}' yielded no "
                                     "labelled clip; nothing was written. Collect longer (--minutes).")
        splits = assign_speaker_splits(sorted({speaker for _, speaker, _ in clips}))
        lists: Dict[str, List[str]] = {layout.EVAL: [], layout.TEST: []}
        counts: Dict[str, Dict[str, int]] = {s: {} for s in layout.SPLITS}
        for relative, speaker, word in clips:
            split = splits[speaker]
            if split in lists:
                lists[split].append(relative)
            label = word if word in config.data.words else layout.UNKNOWN_LABEL
            counts[split][label] = counts[split].get(label, 0) + 1
        write_split_lists(staging, lists)
        manifest = {
            "synthetic": True, "kind": "field span", "shift": campaign.shift, "campaign": dataclasses.asdict(campaign),
            "label_source": GROUND_TRUTH, "voices": field.speakers_source, "snr_db": list(field.snr_db),
            "phrase_cuts": sum(word == generate.PHRASES_DIR for _, _, word in clips),
            "clips": len(clips), "examples_before_sampling": counts,
            "speakers": {split: sorted(s for s, v in splits.items() if v == split) for split in layout.SPLITS},
        }
        publish_dataset(staging, out_dir, manifest)
    return manifest



def write_sample_span(config, samples: Sequence[LabelledSample], out_dir: str, synthetic: bool = False,
                      log: Callable[[str], None] = lambda m: None, known_splits: Optional[Dict[str, str]] = None,
                      source: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Writes labelled uploaded windows as a dataset in ``out_dir`` (split by device); returns its manifest.

    Untrusted input: a window that is not a WAV at ``data.sample_rate``, or whose label is not a class of
    the config, is skipped and listed in the manifest; names come from the record, never from the upload.

    Args:
        known_splits: device -> split from earlier spans: those devices keep their split (a device's clips
            are never test data in one span and training data in the next).
        source: where the windows and their labels come from, recorded in the manifest.
    """
    rate, length = config.data.sample_rate, config.data.clip_samples
    words = set(config.data.words)
    skipped: List[Dict[str, str]] = []
    kept: List[Tuple[str, str, str, bytes]] = []   # (folder, device, name, wav bytes)
    background: List[Any] = []
    sources = sorted({s.label_source for s in samples if s.label_source})
    for sample in samples:
        label = sample.label
        if label not in words and label not in (layout.UNKNOWN_LABEL, layout.SILENCE_LABEL):
            skipped.append({"file": sample.name, "reason": f"label '{label}' is not a class of this config"})
            continue
        try:
            with open(sample.path, "rb") as f:
                samples_16 = wav.read_wav(f.read(), rate)
        except (OSError, wav.WavError) as err:
            skipped.append({"file": sample.name, "reason": str(err)})
            continue
        if label == layout.SILENCE_LABEL:
            background.append(samples_16)
            continue
        clip = wav.fit_to_length(samples_16, length)
        kept.append((label, sample.device_id, sample.name, wav.write_wav(clip, rate)))
    if not kept:
        raise ValueError(f"None of the {len(samples)} labelled windows is a usable keyword or _unknown_ clip "
                         f"({len(skipped)} skipped); nothing was written.")
    with staging_dir(out_dir) as staging:
        _make_span_folders(staging, config.data.words)
        splits = assign_splits_keeping(sorted({device for _, device, _, _ in kept}), known_splits or {})
        lists: Dict[str, List[str]] = {layout.EVAL: [], layout.TEST: []}
        counts: Dict[str, Dict[str, int]] = {s: {} for s in layout.SPLITS}
        for number, (folder, device, name, data) in enumerate(kept):
            # numbered: uploads from several telemetry spans (or a.wav and a.raw) may share a name
            relative = f"{folder}/{device}_nohash_{number:05d}_{os.path.splitext(name)[0]}.wav"
            os.makedirs(os.path.join(staging, folder), exist_ok=True)
            with open(os.path.join(staging, relative), "wb") as f:
                f.write(data)
            split = splits[device]
            if split in lists:
                lists[split].append(relative)
            counts[split][folder] = counts[split].get(folder, 0) + 1
        if background:
            import numpy as np

            with open(os.path.join(staging, layout.NOISE_DIR, "field_silence.wav"), "wb") as f:
                f.write(wav.write_wav(np.concatenate(background).astype("int16"), rate))
        write_split_lists(staging, lists)
        manifest = {"kind": "field span from telemetry samples", "label_source": sources,
                    "clips": len(kept), "background_windows": len(background), "skipped": skipped,
                    "examples_before_sampling": counts, "synthetic": bool(synthetic), **(source or {}),
                    "devices": {split: sorted(d for d, v in splits.items() if v == split) for split in layout.SPLITS}}
        publish_dataset(staging, out_dir, manifest)
    log(f"  {len(kept)} clips, {len(background)} background windows, {len(skipped)} skipped")
    return manifest
