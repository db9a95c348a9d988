"""TelemetryExampleGen executor: ingested summary records (JSON lines) to tf.Examples."""

from __future__ import annotations

import json
import os
from typing import Any, Dict

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs

from components.telemetry import examples as examples_lib


def to_example(record: Dict[str, Any]) -> tf.train.Example:
    """One summary record as a tf.Example (``components/telemetry/examples.py`` names the features)."""
    feature = {}
    for name, values in examples_lib.features(record).items():
        if values and isinstance(values[0], str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
        elif values and isinstance(values[0], float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _summaries_to_examples(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):
    """The summary records of the span's file(s) matching ``split_pattern`` (already validated at ingestion)."""
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise RuntimeError(f"No telemetry file matches {pattern}; ingest a batch first (tinyml-tfx telemetry ingest).")
    return (pipeline
            | "Files" >> beam.Create(files)
            | "Lines" >> beam.FlatMap(lambda path: tf.io.gfile.GFile(path).read().splitlines())
            | "Records" >> beam.Map(json.loads)
            | "Summaries" >> beam.Filter(lambda r: r.get("type") == "summary")
            | "ToExample" >> beam.Map(to_example))


class Executor(BaseExampleGenExecutor):
    """Reads a telemetry span's ``summaries.jsonl`` (written by ``tinyml-tfx telemetry ingest``)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _summaries_to_examples
