"""Keyword spotting's test streams: synthetic ones from the test split's voices, and recordings you bring."""

import dataclasses
import json
import os

import numpy as np
import pytest

from components.audio_example_gen import wav
from components.audio_example_gen.layout import TEST
from components.streaming_evaluator.source import StreamSourceError
from pipeline.tasks.kws import features, generate, streams
from tests.helpers import tiny_spec

KEYWORDS = ("yes", "no")


def recipe(minutes=0.5, seed=5):
    spec = tiny_spec()
    return streams.StreamRecipe(keywords=KEYWORDS, unknown_words=("cat", "dog"),
                                speakers=tuple(dataclasses.asdict(p) for p in generate.split_speakers(spec, TEST)),
                                minutes=minutes, snr_db=(5.0, 15.0, 25.0), seed=seed)


def test_a_synthetic_stream_is_deterministic_and_its_ground_truth_is_where_the_speech_is():
    first, again = streams.render_stream(recipe(), 0), streams.render_stream(recipe(), 0)
    assert first.samples.tobytes() == again.samples.tobytes() and first.events == again.events
    assert streams.render_stream(recipe(seed=6), 0).samples.tobytes() != first.samples.tobytes()
    assert first.duration_s == 30.0 and first.sample_rate == 16000
    test_speakers = {p.speaker_id for p in generate.split_speakers(tiny_spec(), TEST)}
    assert {e.speaker for e in first.events} <= test_speakers
    assert {e.label for e in first.events if e.label in KEYWORDS} == set(KEYWORDS)
    assert all(e.snr_db in (5.0, 15.0, 25.0) for e in first.events)
    # Louder where an utterance is than in the gaps around it: the times are the speech's.
    level = lambda a, b: np.sqrt(np.mean(np.square(first.samples[a * 16:b * 16].astype(float))))  # noqa: E731
    loud = [e for e in first.events if e.snr_db == 25.0]
    assert loud and all(level(e.start_ms, e.end_ms) > 5 * level(e.start_ms - 400, e.start_ms - 150) for e in loud)


def test_phrases_hold_no_keyword_and_the_minutes_come_in_streams_of_at_most_five():
    r = dataclasses.replace(recipe(minutes=12), keywords=("go", "on", "what"))
    assert "what time is it" not in r.usable_phrases() and "turn the music louder" in r.usable_phrases()
    assert r.stream_seconds() == [240.0, 240.0, 240.0]


def test_written_streams_are_wav_files_with_label_files_the_recording_reader_takes_back(tmp_path):
    r = recipe(minutes=0.2)
    path, = streams.write_streams(r, str(tmp_path))
    read = streams.read_recording(path, path[:-4] + streams.LABELS_SUFFIX, 16000)
    rendered = streams.render_stream(r, 0)
    assert read.samples.tobytes() == rendered.samples.tobytes()
    assert [(e.label, e.start_ms, e.end_ms) for e in read.events] == [
        (e.label, e.start_ms, e.end_ms) for e in rendered.events]


def test_recordings_folder_problems_are_named_with_the_fix(tmp_path):
    settings = streams.settings(None, str(tmp_path), features.frontend_params(30, 20, 40, 16000), 49)
    with pytest.raises(StreamSourceError, match="holds no .wav file"):
        streams.plan(settings)
    (tmp_path / "kitchen.wav").write_bytes(wav.write_wav(np.zeros(32000, np.int16), 16000))
    with pytest.raises(StreamSourceError, match=r"has no label file .*kitchen.labels.txt.*an empty one"):
        streams.plan(settings)
    (tmp_path / "kitchen.labels.txt").write_text("1.0\t1.5\tyes\n")
    job, = streams.plan(settings)
    assert [e.label for e in streams.load(job).events] == ["yes"]
    (tmp_path / "kitchen.wav").write_bytes(wav.write_wav(np.zeros(32000, np.int16), 8000))
    with pytest.raises(StreamSourceError, match="sample rate 8000 Hz.*ffmpeg -i IN -ac 1 -ar 16000"):
        streams.load(job)
    (tmp_path / "kitchen.wav").write_bytes(wav.write_wav(np.zeros(32000, np.int16), 16000))
    (tmp_path / "kitchen.labels.txt").write_text("1.0 1.5 yes\n")
    with pytest.raises(StreamSourceError, match="kitchen.labels.txt, line 1"):
        streams.load(job)
    os.remove(tmp_path / "kitchen.labels.txt")
    with pytest.raises(StreamSourceError, match="has no label file"):
        streams.plan(settings)


def test_the_voices_come_from_the_datasets_manifest_when_it_records_a_spec_this_version_reads():
    recorded = json.loads(json.dumps(dataclasses.asdict(tiny_spec())))   # as DATASET.json holds it
    assert generate.spec_of({"spec": recorded}) == tiny_spec()
    assert generate.spec_of({"spec": {**recorded, "from_a_newer_version": 1}}) is None
    assert generate.spec_of({"spec": "garbled"}) is None and generate.spec_of({}) is None
