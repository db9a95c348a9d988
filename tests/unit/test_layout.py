import os

import pytest

from components.audio_example_gen import layout
from components.audio_example_gen.executor import gfile_filesystem


def make_dataset(root, words, speakers, eval_speakers=(), test_speakers=(), noise=True):
    lists = {"validation_list.txt": [], "testing_list.txt": []}
    for word in words:
        os.makedirs(root / word, exist_ok=True)
        for speaker in speakers:
            name = f"{word}/{speaker}_nohash_0.wav"
            (root / name).write_bytes(b"RIFF")
            if speaker in eval_speakers:
                lists["validation_list.txt"].append(name)
            if speaker in test_speakers:
                lists["testing_list.txt"].append(name)
    for name, lines in lists.items():
        (root / name).write_text("\n".join(lines) + "\n")
    if noise:
        os.makedirs(root / layout.NOISE_DIR, exist_ok=True)
        (root / layout.NOISE_DIR / "hum.wav").write_bytes(b"RIFF")
    (root / "LICENSE").write_text("not a clip")


def test_speaker_of():
    assert layout.speaker_of("yes/0a7c2a8d_nohash_3.wav") == "0a7c2a8d"
    assert layout.speaker_of("recording.wav") == "recording"


def test_splits_follow_the_lists_and_other_words_become_unknown(tmp_path):
    speakers = [f"s{i}" for i in range(10)]
    make_dataset(tmp_path, ["yes", "no", "cat", "dog"], speakers, eval_speakers={"s0"}, test_speakers={"s1"})
    clips = layout.plan_clips(str(tmp_path), ["yes", "no"], gfile_filesystem(), {"_background_noise_/hum.wav": 48000},
                              clip_samples=16000, unknown_fraction=0.5, silence_fraction=0.5, seed=3)
    by_split = {s: [c for c in clips if c.split == s] for s in layout.SPLITS}
    wanted = {s: [c for c in by_split[s] if c.label in ("yes", "no")] for s in layout.SPLITS}
    assert [len(wanted[s]) for s in layout.SPLITS] == [16, 2, 2]
    assert {c.speaker for c in wanted["eval"]} == {"s0"} and {c.speaker for c in wanted["test"]} == {"s1"}
    # unknown and silence: half of each split's wanted count
    for split in layout.SPLITS:
        unknown = [c for c in by_split[split] if c.label == layout.UNKNOWN_LABEL]
        silence = [c for c in by_split[split] if c.label == layout.SILENCE_LABEL]
        assert len(unknown) == len(wanted[split]) // 2 and all(c.word in ("cat", "dog") for c in unknown)
        assert len(silence) == len(wanted[split]) // 2
    # no speaker in two splits
    speakers_per_split = [{c.speaker for c in by_split[s] if c.label != layout.SILENCE_LABEL} for s in layout.SPLITS]
    assert not (speakers_per_split[0] & speakers_per_split[1]) and not (speakers_per_split[0] & speakers_per_split[2])


def test_silence_slices_of_each_split_come_from_disjoint_stretches(tmp_path):
    make_dataset(tmp_path, ["yes"], [f"s{i}" for i in range(20)], eval_speakers={"s0", "s1"}, test_speakers={"s2", "s3"})
    length = 16000 * 60
    clips = layout.plan_clips(str(tmp_path), ["yes"], gfile_filesystem(), {"_background_noise_/hum.wav": length},
                              clip_samples=16000, unknown_fraction=0, silence_fraction=3.0, seed=1)
    for clip in (c for c in clips if c.label == layout.SILENCE_LABEL):
        lo, hi = layout.NOISE_REGIONS[clip.split]
        assert lo * length <= clip.offset and clip.offset + 16000 <= hi * length
        assert 0.0 <= clip.gain <= 1.0


def test_plan_is_deterministic_for_a_seed(tmp_path):
    make_dataset(tmp_path, ["yes", "cat"], [f"s{i}" for i in range(10)], eval_speakers={"s0"})
    def plan(seed):
        return layout.plan_clips(str(tmp_path), ["yes"], gfile_filesystem(), {"_background_noise_/hum.wav": 99999},
                                 clip_samples=16000, unknown_fraction=0.3, silence_fraction=0.3, seed=seed)
    assert plan(5) == plan(5)


def test_without_noise_recordings_silence_is_digital(tmp_path):
    make_dataset(tmp_path, ["yes"], ["a", "b", "c"], noise=False)
    clips = layout.plan_clips(str(tmp_path), ["yes"], gfile_filesystem(), {}, clip_samples=16000,
                              unknown_fraction=0, silence_fraction=1.0, seed=0)
    silence = [c for c in clips if c.label == layout.SILENCE_LABEL]
    assert len(silence) == 3 and all(c.relative == layout.DIGITAL_SILENCE for c in silence)


def test_layout_errors_say_what_is_missing(tmp_path):
    fs = gfile_filesystem()
    with pytest.raises(layout.LayoutError, match="does not exist"):
        layout.check_layout(str(tmp_path / "absent"), ["yes"], fs)
    make_dataset(tmp_path, ["yes"], ["a"])
    with pytest.raises(layout.LayoutError, match="no folder for the word"):
        layout.check_layout(str(tmp_path), ["yes", "stop"], fs)
    os.remove(tmp_path / "testing_list.txt")
    with pytest.raises(layout.LayoutError, match="testing_list.txt"):
        layout.check_layout(str(tmp_path), ["yes"], fs)
