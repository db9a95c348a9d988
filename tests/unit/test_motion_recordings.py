"""Reading data-logger recordings: what is refused and why, how windows and splits are cut."""

import numpy as np
import pytest

from components.ingestion import gfile_filesystem
from components.motion_example_gen import recordings
from pipeline.tasks.motion import generate

SPEC = recordings.WindowSpec(channels=("ax", "ay", "az"), sample_rate=50.0, window=20, hop=10)


def _csv(n, rate=50.0, header="timestamp,ax,ay,az", row=lambda i: f"{i * 0.01:.3f},{i * 0.02:.3f},1.0"):
    return header + "\n" + "".join(f"{i / rate:.4f},{row(i)}\n" for i in range(n))


def test_a_good_recording_is_read_in_channel_order():
    text = "timestamp,az,ax,ay\n" + "".join(f"{i / 50:.4f},{i},{-i},{2 * i}\n" for i in range(25))
    samples = recordings.parse_recording(text, SPEC)
    assert samples.shape == (25, 3) and samples.dtype == np.float32
    assert samples[3].tolist() == [-3.0, 6.0, 3.0]  # ax, ay, az whatever the file's column order


@pytest.mark.parametrize("text, reason", [
    (_csv(30, header="timestamp,ax,ay"), "missing column(s) az"),
    (_csv(30, row=lambda i: "0.1,n/a,1.0" if i == 7 else "0.1,0.2,1.0"), "line 9: column 'ay' is 'n/a', not a number"),
    (_csv(30, row=lambda i: "0.1,inf,1.0"), "not a finite number"),
    (_csv(30, rate=100.0), "give 100.0 Hz, not the configured 50 Hz"),
    (_csv(12), "12 samples, fewer than one window of 20 (0.40 s at 50 Hz)"),
    ("timestamp,ax,ay,az\n" + "".join(f"{0.02 * (i % 5):.3f},0,0,1\n" for i in range(30)), "do not increase"),
])
def test_bad_recordings_are_refused_with_the_reason(text, reason):
    with pytest.raises(recordings.RecordingError) as err:
        recordings.parse_recording(text, SPEC)
    assert reason in str(err.value)


def test_windows_stay_inside_the_recording():
    samples = np.arange(55 * 3, dtype=np.float32).reshape(55, 3)
    cut = recordings.windows(samples, SPEC)
    assert [w[0, 0] for w in cut] == [samples[s, 0] for s in (0, 10, 20, 30)]  # 30 + 20 <= 55 < 40 + 20
    assert all(w.shape == (20, 3) for w in cut)


def test_splits_follow_the_lists_else_the_subject(tmp_path):
    generate.generate_dataset(generate.MotionSpec(subjects=10, repetitions=2, seconds=2.0), str(tmp_path / "d"))
    fs = gfile_filesystem()
    listed = recordings.plan_recordings(str(tmp_path / "d"), generate.GESTURES, fs)
    eval_list = set((tmp_path / "d" / "validation_list.txt").read_text().split())
    assert {r.relative for r in listed if r.split == "eval"} == eval_list
    for name in ("validation_list.txt", "testing_list.txt"):
        (tmp_path / "d" / name).unlink()
    hashed = recordings.plan_recordings(str(tmp_path / "d"), generate.GESTURES, fs)
    by_subject = {}
    for r in hashed:
        by_subject.setdefault(recordings.speaker_of(r.relative), set()).add(r.split)
    assert all(len(splits) == 1 for splits in by_subject.values())  # a subject never spans two splits
    assert len(hashed) == len(listed) == 10 * 2 * len(generate.GESTURES)


def test_a_missing_label_folder_names_the_label(tmp_path):
    (tmp_path / "idle").mkdir()
    with pytest.raises(recordings.LayoutError, match="label\\(s\\) wave"):
        recordings.check_layout(str(tmp_path), ["idle", "wave"], gfile_filesystem())


def test_generated_data_is_deterministic_and_synthetic(tmp_path):
    spec = generate.MotionSpec(subjects=3, repetitions=1, seconds=2.0)
    a = generate.generate_dataset(spec, str(tmp_path / "a"))
    generate.generate_dataset(spec, str(tmp_path / "b"))
    assert a["synthetic"] is True and "SYNTHETIC" in a["description"]
    for path in sorted((tmp_path / "a").rglob("*.csv")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    assert not generate.ensure_dataset(spec, str(tmp_path / "a"))  # already there: not regenerated
