"""MotionExampleGen executor: CSV recordings to windowed tf.Examples, on Apache Beam."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import posixpath
from typing import Any, Dict, Iterator, List

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.types import artifact_utils, standard_component_specs

from components import ingestion, planned_example_gen
from components.ingestion import INGESTION_REPORT_FILE, gfile_filesystem
from components.motion_example_gen import recordings

LABELS_KEY = "labels"
CHANNELS_KEY = "channels"
SAMPLE_RATE_KEY = "sample_rate"
WINDOW_SAMPLES_KEY = "window_samples"
HOP_SAMPLES_KEY = "hop_samples"
TIMESTAMP_COLUMN_KEY = "timestamp_column"
TIMESTAMP_SCALE_KEY = "timestamp_scale"
ENCODING_KEY = "encoding"
MAX_SKIPPED_FRACTION_KEY = "max_skipped_fraction"
SEED_KEY = "seed"

# Logged as recordings are read; the CLI turns it into a progress bar (pipeline/progress.py).
PROGRESS_MESSAGE = "MotionExampleGen ingested %d/%d recordings"
_SKIPPED_TAG, _TALLY_TAG = "skipped", "tally"


def spec_from(exec_properties: Dict[str, Any]) -> recordings.WindowSpec:
    return recordings.WindowSpec(
        channels=tuple(json.loads(exec_properties[CHANNELS_KEY])),
        sample_rate=float(exec_properties[SAMPLE_RATE_KEY]),
        window=int(exec_properties[WINDOW_SAMPLES_KEY]), hop=int(exec_properties[HOP_SAMPLES_KEY]),
        timestamp_column=exec_properties[TIMESTAMP_COLUMN_KEY],
        timestamp_scale=float(exec_properties[TIMESTAMP_SCALE_KEY]))


def make_example(recording: recordings.RecordingRef, index: int, start: int, window, channels) -> tf.train.Example:
    """One window: a float list per channel, and where it came from."""
    def b(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

    feature = {name: tf.train.Feature(float_list=tf.train.FloatList(value=window[:, i].tolist()))
               for i, name in enumerate(channels)}
    feature.update({
        "label": b(recording.label),
        "recording": b(recording.relative),
        "subject": b(recordings.speaker_of(recording.relative)),
        "source": b(f"{recording.relative}#{start}"),
        "window_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
    })
    return tf.train.Example(features=tf.train.Features(feature=feature))


class _WindowRecording(beam.DoFn):
    """Reads one recording and yields its windows; unusable files go to 'skipped' with the reason."""

    def __init__(self, root: str, spec: recordings.WindowSpec, total: int, encoding: str):
        self._root, self._spec, self._total, self._encoding = root, spec, total, encoding
        self._done = 0

    def process(self, recording: recordings.RecordingRef) -> Iterator[Any]:
        self._done += 1
        if self._done % max(1, self._total // 50) == 0 or self._done == self._total:
            logging.info(PROGRESS_MESSAGE, self._done, self._total)
        path = posixpath.join(self._root, recording.relative)
        try:
            with tf.io.gfile.GFile(path, "rb") as f:
                samples = recordings.parse_recording(recordings.decode_recording(f.read(), self._encoding), self._spec)
        except recordings.RecordingError as err:
            yield beam.pvalue.TaggedOutput(_SKIPPED_TAG, {
                "file": recording.relative, "split": recording.split, "label": recording.label, "reason": str(err)})
            return
        cut = recordings.windows(samples, self._spec)
        for index, window in enumerate(cut):
            example = make_example(recording, index, index * self._spec.hop, window, self._spec.channels)
            yield (recording.split, example.SerializeToString())
        yield beam.pvalue.TaggedOutput(_TALLY_TAG, (recording.split, recording.label, len(cut)))


class Executor(planned_example_gen.PlannedExampleGenExecutor):
    """Generates train/eval/test windows from a folder of CSV recordings (one folder per label)."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        self._report_path = os.path.join(examples.uri, INGESTION_REPORT_FILE)
        super().Do(input_dict, output_dict, exec_properties)
        with tf.io.gfile.GFile(self._report_path) as f:
            report = json.load(f)
        for skipped in report["skipped"]:
            logging.warning("MotionExampleGen skipped %s: %s", skipped["file"], skipped["reason"])
        ingestion.record_spans_read(examples, getattr(self, "_spans_read", []), exec_properties)
        for entry in report["missing_listed"]:
            logging.warning("MotionExampleGen: a split list names %s, which is not in the dataset", entry)
        ingestion.check_skipped(
            report, float(exec_properties.get(MAX_SKIPPED_FRACTION_KEY) or ingestion.DEFAULT_MAX_SKIPPED_FRACTION),
            "MotionExampleGen", self._report_path,
            "Check data.sample_rate and motion.timestamp_unit against the logger's settings, motion.channels and "
            "motion.timestamp_column against the CSV header, and motion.window_ms against the recordings' length.")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: Dict[str, Any]) -> Dict[str, beam.pvalue.PCollection]:
        base = exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip("/")
        labels = json.loads(exec_properties[LABELS_KEY])
        spec = spec_from(exec_properties)
        fs = gfile_filesystem()
        # One dataset folder, or the spans read: each planned on its own, its paths below the base.
        plan, missing_listed = [], []
        roots = ingestion.dataset_roots(exec_properties, fs)
        for prefix, root in roots:
            plan += [dataclasses.replace(r, relative=ingestion.below_span(prefix, r.relative))
                     for r in recordings.plan_recordings(root, labels, fs)]
            missing_listed += [ingestion.below_span(prefix, m) for m in ingestion.missing_from_lists(root, fs)]
        self._spans_read = [prefix for prefix, _ in roots if prefix]
        encoding = exec_properties.get(ENCODING_KEY) or "auto"
        read = (pipeline
                | "PlanRecordings" >> self.read_plan(plan, recordings.RecordingRef, int(exec_properties.get(SEED_KEY) or 0))
                | "WindowRecordings" >> beam.ParDo(_WindowRecording(base, spec, len(plan), encoding)).with_outputs(
                    _SKIPPED_TAG, _TALLY_TAG, main="examples"))
        _ = (read[_TALLY_TAG]
             | "CollectTally" >> beam.combiners.ToList()
             | "WriteReport" >> beam.Map(_write_report, self._report_path,
                                         beam.pvalue.AsList(read[_SKIPPED_TAG]), missing_listed))
        return {split: (read.examples
                        | f"Select[{split}]" >> beam.Filter(lambda kv, s=split: kv[0] == s)
                        | f"Drop[{split}]" >> beam.Values())
                for split in ingestion.SPLITS}


def _write_report(tally: List[Any], path: str, skipped: List[Dict[str, str]], missing_listed: List[str]) -> None:
    """The same ingestion report as AudioExampleGen's (components/ingestion.py): windows per split and
    label, recordings read per label, skipped files, split-list entries that name no file."""
    counts: Dict[str, Dict[str, int]] = {split: collections.Counter() for split in ingestion.SPLITS}
    files_read: Dict[str, int] = collections.Counter()
    for split, label, n in tally:
        counts[split][label] += n
        files_read[label] += 1
    report = {"examples": {split: dict(sorted(c.items())) for split, c in counts.items()},
              "files_read": dict(sorted(files_read.items())),
              "skipped": sorted(skipped, key=lambda s: s["file"]),
              "missing_listed": missing_listed}
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
