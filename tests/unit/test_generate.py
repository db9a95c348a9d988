import dataclasses
import hashlib
import json
import os

from components.audio_example_gen import layout, wav
from pipeline.tasks.common import datasets
from pipeline.tasks.kws import generate
from tests.helpers import TINY_UNKNOWN_WORDS, TINY_WORDS, tiny_spec


def test_layout_lists_and_manifest(tiny_dataset):
    for word in TINY_WORDS + TINY_UNKNOWN_WORDS:
        clips = os.listdir(os.path.join(tiny_dataset, word))
        assert len(clips) == 10 * 3
        samples = wav.read_wav(open(os.path.join(tiny_dataset, word, clips[0]), "rb").read(), 16000)
        assert len(samples) == 16000 and wav.rms_dbfs(samples) > -45
    assert len(os.listdir(os.path.join(tiny_dataset, layout.NOISE_DIR))) >= 3
    manifest = json.load(open(os.path.join(tiny_dataset, datasets.MANIFEST_FILE)))
    assert manifest["synthetic"] is True and "SYNTHETIC" in manifest["description"]
    assert manifest["fingerprint"] == tiny_spec().fingerprint()


def test_every_speaker_is_in_exactly_one_split(tiny_dataset):
    listed = {}
    for split, name in layout.SPLIT_LISTS.items():
        for line in open(os.path.join(tiny_dataset, name)).read().split():
            listed.setdefault(layout.speaker_of(line), set()).add(split)
    assert listed, "the eval and test lists are empty"
    assert all(len(splits) == 1 for splits in listed.values())
    splits = datasets.assign_speaker_splits([f"spk{i}" for i in range(10)])
    assert sorted(splits.values()).count("eval") == 1 and sorted(splits.values()).count("test") == 1


def test_generation_is_deterministic_whatever_the_process_count(tmp_path):
    spec = generate.GenerationSpec(words=("go", "yes"), unknown_words=(), speakers=4, repetitions=2,
                                   noise_seconds=5, seed=11)
    generate.generate_dataset(spec, str(tmp_path / "a"), processes=1)
    generate.generate_dataset(spec, str(tmp_path / "b"), processes=2)
    for root, _, files in os.walk(tmp_path / "a"):
        for name in files:
            a = os.path.join(root, name)
            b = a.replace(str(tmp_path / "a"), str(tmp_path / "b"))
            assert open(a, "rb").read() == open(b, "rb").read(), name


def test_ensure_dataset_reuses_matching_data_and_replaces_stale(tmp_path):
    spec = generate.GenerationSpec(words=("go",), unknown_words=(), speakers=3, repetitions=1, noise_seconds=5)
    out = str(tmp_path / "d")
    assert generate.ensure_dataset(spec, out, processes=1) is True
    marker = os.path.join(out, "go", "marker")
    open(marker, "w").close()
    assert generate.ensure_dataset(spec, out, processes=1) is False and os.path.exists(marker)
    other = generate.GenerationSpec(words=("go",), unknown_words=(), speakers=4, repetitions=1, noise_seconds=5)
    assert generate.ensure_dataset(other, out, processes=1) is True and not os.path.exists(marker)


def test_phrase_cuts_are_unknown_examples_of_their_speakers_split(tmp_path):
    from components.ingestion import gfile_filesystem
    from pipeline.tasks.kws import streams

    spec = generate.GenerationSpec(words=("go", "night"), unknown_words=(), speakers=10, repetitions=1,
                                   noise_seconds=5, seed=11, phrase_clips=2)
    # No sentence holds a keyword as a word, and none is a sentence of the test streams.
    assert spec.phrases() and len(spec.phrases()) < len(generate.TRAINING_PHRASES)
    assert not any({"go", "night"} & set(p.split()) for p in spec.phrases())
    assert not set(generate.TRAINING_PHRASES) & set(streams.PHRASES)
    root = str(tmp_path / "d")
    generate.generate_dataset(spec, root, processes=2)
    names = sorted(os.listdir(os.path.join(root, generate.PHRASES_DIR)))
    assert len(names) == 10 * 2
    cuts = [wav.read_wav(open(os.path.join(root, generate.PHRASES_DIR, n), "rb").read(), 16000) for n in names]
    assert all(len(c) == 16000 and wav.rms_dbfs(c) > -45 for c in cuts) and len({c.tobytes() for c in cuts}) == 20
    manifest = json.load(open(os.path.join(root, datasets.MANIFEST_FILE)))
    noise = {n: 5 * 16000 for n in layout.noise_files(root, gfile_filesystem())}
    planned = layout.plan_clips(root, ("go", "night"), gfile_filesystem(), noise, clip_samples=16000,
                                unknown_fraction=10.0, silence_fraction=0.0, seed=1)
    phrase_clips = [c for c in planned if c.word == generate.PHRASES_DIR]
    assert len(phrase_clips) == 20 and all(c.label == layout.UNKNOWN_LABEL for c in phrase_clips)
    assert all(c.split == manifest["speakers"][c.speaker]["split"] for c in phrase_clips)
    assert generate.spec_of(manifest) == spec


def test_specs_without_phrases_keep_their_fingerprint():
    spec = generate.GenerationSpec(words=("go",), unknown_words=(), speakers=3, repetitions=1, noise_seconds=5)
    before = {"words": ["go"], "unknown_words": [], "speakers": 3, "repetitions": 1, "noise_seconds": 5,
              "sample_rate": 16000, "clip_samples": 16000, "seed": 59185}
    assert spec.fingerprint() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert dataclasses.replace(spec, phrase_clips=1).fingerprint() != spec.fingerprint()
