"""MotionExampleGen: a FileBasedExampleGen for data-logger CSV recordings, cut into windows."""

from __future__ import annotations

import json
from typing import Sequence

from tfx.components.example_gen import driver
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components import ingestion, planned_example_gen
from components.motion_example_gen import executor, recordings


class MotionExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's parameters plus the recordings' channels and windowing."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.LABELS_KEY: ExecutionParameter(type=str),
        executor.CHANNELS_KEY: ExecutionParameter(type=str),
        executor.SAMPLE_RATE_KEY: ExecutionParameter(type=float),
        executor.WINDOW_SAMPLES_KEY: ExecutionParameter(type=int),
        executor.HOP_SAMPLES_KEY: ExecutionParameter(type=int),
        executor.TIMESTAMP_COLUMN_KEY: ExecutionParameter(type=str),
        executor.TIMESTAMP_SCALE_KEY: ExecutionParameter(type=float),
        executor.ENCODING_KEY: ExecutionParameter(type=str, optional=True),
        executor.MAX_SKIPPED_FRACTION_KEY: ExecutionParameter(type=float, optional=True),
        executor.SEED_KEY: ExecutionParameter(type=int, optional=True),
        ingestion.SPAN_FOLDER_KEY: ExecutionParameter(type=str, optional=True),
        ingestion.SPANS_KEY: ExecutionParameter(type=int, optional=True),
        planned_example_gen.COMPRESSION_KEY: ExecutionParameter(type=str, optional=True),
    }


def split_input_config(span_folder: str = "") -> example_gen_pb2.Input:
    """One input split per output split; the executor assigns recordings to splits itself.

    The patterns tell TFX's driver what to fingerprint for the cache: every recording, and
    the root's entries (so a new or changed split list invalidates the cached examples too;
    the lists are optional, so no pattern may require them). With ``span_folder`` (holding
    ``{SPAN}``) the patterns sit in it, and the driver picks the newest span.
    """
    prefix = f"{span_folder}/" if span_folder else ""
    return example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=recordings.TRAIN, pattern=f"{prefix}*/*{recordings.RECORDING_EXTENSION}"),
        example_gen_pb2.Input.Split(name=recordings.EVAL, pattern=f"{prefix}*"),
        example_gen_pb2.Input.Split(name=recordings.TEST, pattern=f"{prefix}*"),
    ])


class MotionExampleGen(base_beam_component.BaseBeamComponent):
    """Reads accelerometer/gyroscope recordings (CSV, one folder per label) into windowed tf.Examples.

    Output ``examples``: gzipped TFRecords in splits train, eval and test; each example is
    one window with a float feature per channel (``window_samples`` values), ``label``,
    ``recording``, ``subject``, ``source`` and ``window_index``; plus
    ``ingestion_report.json`` with the windows per split and label, the recordings read per
    label, every skipped file with its reason, and split-list entries that name no file.
    The run stops here when every file, every file of a class, or more than
    ``max_skipped_fraction`` of them could not be read.
    """

    SPEC_CLASS = MotionExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(self, input_base: str, labels: Sequence[str], channels: Sequence[str], *, sample_rate: float,
                 window_samples: int, hop_samples: int, timestamp_column: str = "timestamp",
                 timestamp_scale: float = 1.0, encoding: str = "auto",
                 max_skipped_fraction: float = ingestion.DEFAULT_MAX_SKIPPED_FRACTION, span_folder: str = "",
                 spans: int = 1, seed: int = 0, compression: str = planned_example_gen.DEFAULT_COMPRESSION):
        """Constructs a MotionExampleGen.

        Args:
            input_base: the dataset folder (local path or a gs:// style URI).
            labels: the classes, in class order; each is a folder of recordings.
            channels: the CSV columns that form a sample, in model order.
            sample_rate: samples per second; recordings whose timestamps disagree are skipped.
            window_samples: samples per window (example).
            hop_samples: samples between consecutive windows' starts.
            timestamp_column: the CSV column with each sample's time.
            timestamp_scale: seconds per timestamp unit.
            encoding: the recordings' text encoding; "auto" reads UTF-8 (with or without a BOM),
                else Windows-1252.
            max_skipped_fraction: the run stops when more of the recordings than this cannot be read.
            span_folder: "" when ``input_base`` is the dataset; else the name of its span folders with
                ``{SPAN}`` in it (e.g. ``span-{SPAN}``): TFX's driver finds the newest span.
            spans: with ``span_folder``, how many spans up to the newest are read into the examples (the
                older ones are taken as they are: spans are append-only; the newest is fingerprinted).
            seed: orders the recordings as they are written (a seeded shuffle, so the labels are mixed:
                components/planned_example_gen.py).
            compression: how the examples' TFRecords are written: "gzip" (TFX's default) or "none"
                (``planned_example_gen.COMPRESSIONS``; readers tell them apart by the ".gz" suffix).
        """
        planned_example_gen.compression_suffix(compression)  # an unknown one fails when the pipeline is built
        super().__init__(spec=MotionExampleGenSpec(
            input_base=input_base,
            input_config=split_input_config(span_folder),
            output_config=example_gen_pb2.Output(),
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            labels=json.dumps(list(labels)),
            channels=json.dumps(list(channels)),
            sample_rate=float(sample_rate),
            window_samples=window_samples,
            hop_samples=hop_samples,
            timestamp_column=timestamp_column,
            timestamp_scale=float(timestamp_scale),
            encoding=encoding,
            max_skipped_fraction=float(max_skipped_fraction),
            span_folder=span_folder,
            spans=int(spans),
            seed=int(seed),
            compression=compression,
            examples=channel.Channel(type=standard_artifacts.Examples),
        ))
