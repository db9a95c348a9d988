"""AudioExampleGen executor: Speech Commands folders to tf.Examples, on Apache Beam."""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import posixpath
from typing import Any, Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from absl import logging
from tfx.types import artifact_utils, standard_component_specs

from components import ingestion, planned_example_gen
from components.ingestion import INGESTION_REPORT_FILE, gfile_filesystem  # noqa: F401 (this ExampleGen's)
from components.audio_example_gen import layout, wav

WORDS_KEY = "words"
UNKNOWN_FRACTION_KEY = "unknown_fraction"
SILENCE_FRACTION_KEY = "silence_fraction"
SAMPLE_RATE_KEY = "sample_rate"
CLIP_SAMPLES_KEY = "clip_samples"
SEED_KEY = "seed"
MAX_TRIM_SAMPLES_KEY = "max_trim_samples"
MAX_SKIPPED_FRACTION_KEY = "max_skipped_fraction"

SKIPPED_FILES_PROPERTY = "num_skipped_files"
_SKIPPED_TAG, _ADJUSTED_TAG = "skipped", "adjusted"


def _read_bytes(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def clip_bytes(root: str, clip: layout.ClipRef) -> Optional[bytes]:
    """The bytes of the clip's WAV file below ``root``; None for a silence clip (cut from a noise recording,
    read once per recording by the decoder)."""
    if clip.label == layout.SILENCE_LABEL:
        return None
    return _read_bytes(posixpath.join(root, clip.relative))


def make_example(clip: layout.ClipRef, samples: np.ndarray, original_samples: int) -> tf.train.Example:
    """Builds the tf.Example for one clip; ``samples`` already has the clip length."""
    def b(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

    feature = {
        "audio": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[np.asarray(samples, dtype="<i2").tobytes()])),
        "label": b(clip.label),
        "word": b(clip.word),
        "speaker": b(clip.speaker),
        "source": b(clip.source),
        "original_samples": tf.train.Feature(int64_list=tf.train.Int64List(value=[original_samples])),
        "rms_dbfs": tf.train.Feature(float_list=tf.train.FloatList(value=[wav.rms_dbfs(samples)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


# Logged as clips are decoded; the CLI turns it into a progress bar (pipeline/progress.py).
# Counts are per worker: exact with the default in-process runner, a lower bound otherwise.
PROGRESS_MESSAGE = "AudioExampleGen ingested %d/%d clips"


class _DecodeClip(beam.DoFn):
    """Decodes one clip from its file's bytes (``clip_bytes``, read ahead); unreadable ones go to the
    'skipped' output with the reason."""

    def __init__(self, root: str, sample_rate: int, clip_samples: int, total: int, max_trim_samples: int):
        self._root = root
        self._max_trim_samples = max_trim_samples
        self._sample_rate = sample_rate
        self._clip_samples = clip_samples
        self._noise_cache: Dict[str, np.ndarray] = {}
        self._total = total
        self._done = 0

    def _count(self) -> None:
        self._done += 1
        if self._done % max(1, self._total // 50) == 0 or self._done == self._total:
            logging.info(PROGRESS_MESSAGE, self._done, self._total)

    def _noise(self, relative: str) -> np.ndarray:
        if relative not in self._noise_cache:
            self._noise_cache[relative] = wav.read_wav(
                _read_bytes(posixpath.join(self._root, relative)), self._sample_rate)
        return self._noise_cache[relative]

    def process(self, clip_and_bytes: Tuple[layout.ClipRef, Optional[bytes]]) -> Iterator[Any]:
        clip, data = clip_and_bytes
        self._count()
        if clip.label == layout.SILENCE_LABEL:
            if clip.relative == layout.DIGITAL_SILENCE or clip.relative.endswith("/" + layout.DIGITAL_SILENCE):
                samples = np.zeros(self._clip_samples, dtype=np.int16)
            else:
                noise = self._noise(clip.relative)[clip.offset:clip.offset + self._clip_samples]
                samples = np.clip(noise.astype(np.float32) * clip.gain, -32768, 32767).astype(np.int16)
            samples = wav.fit_to_length(samples, self._clip_samples)
            yield (clip.split, make_example(clip, samples, self._clip_samples).SerializeToString())
            return
        try:
            raw = wav.read_wav(data, self._sample_rate)
        except wav.WavError as err:
            yield self._skip(clip, str(err))
            return
        extra = len(raw) - self._clip_samples
        if extra > self._max_trim_samples:
            yield self._skip(clip, f"{1000 * len(raw) / self._sample_rate:.0f} ms long: cutting it to a "
                                   f"{1000 * self._clip_samples / self._sample_rate:.0f} ms clip would drop more than "
                                   f"{1000 * self._max_trim_samples / self._sample_rate:.0f} ms (data.max_trim_ms)")
            return
        if extra:
            yield beam.pvalue.TaggedOutput(_ADJUSTED_TAG, {
                "file": clip.relative, "split": clip.split, "label": clip.label,
                "change": "trimmed" if extra > 0 else "padded", "samples": abs(extra)})
        samples = wav.fit_to_length(raw, self._clip_samples)
        yield (clip.split, make_example(clip, samples, len(raw)).SerializeToString())

    @staticmethod
    def _skip(clip: layout.ClipRef, reason: str):
        return beam.pvalue.TaggedOutput(_SKIPPED_TAG, {
            "file": clip.relative, "split": clip.split, "label": clip.label, "reason": reason})


class Executor(planned_example_gen.PlannedExampleGenExecutor):
    """Generates train/eval/test tf.Examples from a Speech Commands style folder.

    Splits come from the dataset's own split lists (by speaker), not from hashing,
    so the output config must not define hash buckets.
    """

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        self._report_path = os.path.join(examples.uri, INGESTION_REPORT_FILE)
        super().Do(input_dict, output_dict, exec_properties)
        with tf.io.gfile.GFile(self._report_path, "r") as f:
            report = json.load(f)
        for skipped in report["skipped"]:
            logging.warning("AudioExampleGen skipped %s: %s", skipped["file"], skipped["reason"])
        for entry in report["missing_listed"]:
            logging.warning("AudioExampleGen: a split list names %s, which is not in the dataset", entry)
        examples.set_int_custom_property(SKIPPED_FILES_PROPERTY, len(report["skipped"]))
        ingestion.record_spans_read(examples, getattr(self, "_spans_read", []), exec_properties)
        logging.info("AudioExampleGen wrote %s; %d file(s) skipped, %d padded, %d trimmed.", self._report_path,
                     len(report["skipped"]), report["adjusted"]["padded"], report["adjusted"]["trimmed"])
        ingestion.check_skipped(
            report, float(exec_properties.get(MAX_SKIPPED_FRACTION_KEY) or ingestion.DEFAULT_MAX_SKIPPED_FRACTION),
            "AudioExampleGen", self._report_path,
            "Clips must be mono 16-bit PCM WAV at the configured data.sample_rate.")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: Dict[str, Any]) -> Dict[str, beam.pvalue.PCollection]:
        base = exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip("/")
        words = json.loads(exec_properties[WORDS_KEY])
        sample_rate = int(exec_properties[SAMPLE_RATE_KEY])
        clip_samples = int(exec_properties[CLIP_SAMPLES_KEY])
        fs = gfile_filesystem()

        # Every dataset folder (one, or the spans read) is planned on its own; paths below the base
        # carry the span folder, so the clips of all spans decode from one root.
        noise_lengths: Dict[str, int] = {}
        planning_problems: List[Dict[str, str]] = []
        clips: List[layout.ClipRef] = []
        missing_listed: List[str] = []
        roots = ingestion.dataset_roots(exec_properties, fs)
        for prefix, root in roots:
            span_noise: Dict[str, int] = {}
            for relative in layout.noise_files(root, fs):
                try:
                    span_noise[relative] = len(wav.read_wav(_read_bytes(posixpath.join(root, relative)), sample_rate))
                except wav.WavError as err:
                    planning_problems.append({"file": ingestion.below_span(prefix, relative), "split": "",
                                              "label": layout.SILENCE_LABEL, "reason": str(err)})
            planned_clips = layout.plan_clips(
                root, words, fs, span_noise, clip_samples=clip_samples,
                unknown_fraction=float(exec_properties[UNKNOWN_FRACTION_KEY]),
                silence_fraction=float(exec_properties[SILENCE_FRACTION_KEY]),
                seed=int(exec_properties[SEED_KEY]))
            clips += [dataclasses.replace(c, relative=ingestion.below_span(prefix, c.relative)) for c in planned_clips]
            noise_lengths.update({ingestion.below_span(prefix, r): n for r, n in span_noise.items()})
            missing_listed += [ingestion.below_span(prefix, m) for m in layout.missing_from_lists(root, fs)]
        self._spans_read = [prefix for prefix, _ in roots if prefix]
        planned = collections.Counter((c.split, c.label) for c in clips)

        max_trim = int(exec_properties.get(MAX_TRIM_SAMPLES_KEY) or 0)
        decoded = (
            pipeline
            | "PlanClips" >> self.read_plan(clips, layout.ClipRef, int(exec_properties[SEED_KEY]),
                                            fetch=functools.partial(clip_bytes, base))
            | "DecodeClips" >> beam.ParDo(_DecodeClip(base, sample_rate, clip_samples, len(clips), max_trim))
            .with_outputs(_SKIPPED_TAG, _ADJUSTED_TAG, main="examples"))

        report_path = self._report_path
        _ = (
            decoded[_SKIPPED_TAG]
            | "CollectSkipped" >> beam.combiners.ToList()
            | "WriteReport" >> beam.Map(_write_report, report_path, planned, planning_problems,
                                        beam.pvalue.AsList(decoded[_ADJUSTED_TAG]),
                                        missing_listed, len(noise_lengths)))

        return {
            split: (decoded.examples
                    | f"Select[{split}]" >> beam.Filter(lambda kv, s=split: kv[0] == s)
                    | f"Drop[{split}]" >> beam.Values())
            for split in layout.SPLITS
        }


def _write_report(skipped: List[Dict[str, str]], path: str, planned: collections.Counter,
                  planning_problems: List[Dict[str, str]], adjusted: List[Dict[str, Any]],
                  missing_listed: List[str], noise_files_read: int) -> None:
    """The ingestion report (components/ingestion.py describes its fields)."""
    counts = collections.Counter(planned)
    for item in skipped:
        counts[(item["split"], item["label"])] -= 1
    # Silence examples are cut from the noise recordings, so its files are those recordings.
    files_read = collections.Counter({layout.SILENCE_LABEL: noise_files_read} if noise_files_read else {})
    for (_, label), n in counts.items():
        if label != layout.SILENCE_LABEL and n > 0:
            files_read[label] += n
    all_skipped = sorted(planning_problems + list(skipped), key=lambda s: s["file"])
    changes = collections.Counter(item["change"] for item in adjusted)
    report = {
        "examples": {split: {label: n for (s, label), n in sorted(counts.items()) if s == split and n}
                     for split in layout.SPLITS},
        "files_read": dict(sorted(files_read.items())),
        "skipped": all_skipped,
        "adjusted": {"padded": changes["padded"], "trimmed": changes["trimmed"],
                     "files": sorted(adjusted, key=lambda a: a["file"])},
        "missing_listed": missing_listed,
    }
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
