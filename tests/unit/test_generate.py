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
