"""AudioExampleGen: a FileBasedExampleGen for Speech Commands style audio folders."""

from __future__ import annotations

import json
from typing import Sequence

from tfx.components.example_gen import driver
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components import ingestion, planned_example_gen
from components.audio_example_gen import executor, layout


class AudioExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's parameters plus the audio layout's."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.WORDS_KEY: ExecutionParameter(type=str),
        executor.UNKNOWN_FRACTION_KEY: ExecutionParameter(type=float),
        executor.SILENCE_FRACTION_KEY: ExecutionParameter(type=float),
        executor.SAMPLE_RATE_KEY: ExecutionParameter(type=int),
        executor.CLIP_SAMPLES_KEY: ExecutionParameter(type=int),
        executor.SEED_KEY: ExecutionParameter(type=int),
        executor.MAX_TRIM_SAMPLES_KEY: ExecutionParameter(type=int, optional=True),
        executor.MAX_SKIPPED_FRACTION_KEY: ExecutionParameter(type=float, optional=True),
        ingestion.SPAN_FOLDER_KEY: ExecutionParameter(type=str, optional=True),
        ingestion.SPANS_KEY: ExecutionParameter(type=int, optional=True),
        planned_example_gen.COMPRESSION_KEY: ExecutionParameter(type=str, optional=True),
    }


def split_input_config(span_folder: str = "") -> example_gen_pb2.Input:
    """One input split per output split.

    The executor assigns clips to splits from the dataset's split lists; the patterns
    here tell TFX's driver which files to fingerprint, so that a changed clip or a
    changed list invalidates the cached examples. With ``span_folder`` (holding ``{SPAN}``)
    the patterns sit in it, and the driver picks the newest span.
    """
    prefix = f"{span_folder}/" if span_folder else ""
    return example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=layout.TRAIN, pattern=f"{prefix}*/*.wav"),
        example_gen_pb2.Input.Split(name=layout.EVAL, pattern=prefix + layout.SPLIT_LISTS[layout.EVAL]),
        example_gen_pb2.Input.Split(name=layout.TEST, pattern=prefix + layout.SPLIT_LISTS[layout.TEST]),
    ])


class AudioExampleGen(base_beam_component.BaseBeamComponent):
    """Reads 1 s, 16 kHz mono WAV clips in the Speech Commands layout into tf.Examples.

    Output ``examples``: TFRecords (gzipped or plain: ``compression``) of tf.Examples in splits train, eval and
    test, with features ``audio`` (the clip as little-endian int16 PCM bytes, padded
    or trimmed to ``clip_samples``), ``label``, ``word``, ``speaker``, ``source``,
    ``original_samples`` and ``rms_dbfs``; plus ``ingestion_report.json`` with the
    examples per split and class, every skipped file with its reason, the padded and
    trimmed clips, and split-list entries that name no file. The run stops here when every
    file, every file of a class, or more than ``max_skipped_fraction`` of them could not be read.
    """

    SPEC_CLASS = AudioExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(self, input_base: str, words: Sequence[str], *, unknown_fraction: float = 0.1,
                 silence_fraction: float = 0.1, sample_rate: int = 16000,
                 clip_samples: int = 16000, seed: int = 59185, max_trim_samples: int = 1600,
                 max_skipped_fraction: float = ingestion.DEFAULT_MAX_SKIPPED_FRACTION, span_folder: str = "",
                 spans: int = 1, compression: str = planned_example_gen.DEFAULT_COMPRESSION):
        """Constructs an AudioExampleGen.

        Args:
            input_base: the dataset folder (local path or a gs:// style URI).
            words: the wanted words, in class order; other word folders become ``_unknown_``.
            unknown_fraction: ``_unknown_`` examples per split, as a fraction of wanted ones.
            silence_fraction: ``_silence_`` examples per split, cut from ``_background_noise_``.
            sample_rate: the sample rate every clip must have; others are skipped.
            clip_samples: samples per example; shorter clips are zero-padded at the end,
                longer ones truncated (both recorded in the ingestion report).
            seed: makes the unknown and silence sampling repeatable.
            max_trim_samples: a clip longer than ``clip_samples`` by more than this is skipped
                rather than cut (what it holds past the cut would be lost).
            max_skipped_fraction: the run stops when more of the clips than this cannot be read.
            span_folder: "" when ``input_base`` is the dataset; else the name of its span folders with
                ``{SPAN}`` in it (e.g. ``span-{SPAN}``): TFX's driver finds the newest span.
            spans: with ``span_folder``, how many spans up to the newest are read into the examples (the
                older ones are taken as they are: spans are append-only; the newest is fingerprinted).
            compression: how the examples' TFRecords are written: "gzip" (TFX's default) or "none"
                (``planned_example_gen.COMPRESSIONS``; readers tell them apart by the ".gz" suffix).
        """
        planned_example_gen.compression_suffix(compression)  # an unknown one fails when the pipeline is built
        input_config = split_input_config(span_folder)
        spec = AudioExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=example_gen_pb2.Output(),
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            words=json.dumps(list(words)),
            unknown_fraction=unknown_fraction,
            silence_fraction=silence_fraction,
            sample_rate=sample_rate,
            clip_samples=clip_samples,
            seed=seed,
            max_trim_samples=int(max_trim_samples),
            max_skipped_fraction=float(max_skipped_fraction),
            span_folder=span_folder,
            spans=int(spans),
            compression=compression,
            examples=channel.Channel(type=standard_artifacts.Examples),
        )
        super().__init__(spec=spec)
