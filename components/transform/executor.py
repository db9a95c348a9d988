"""TFX's Transform executor, writing the transformed examples gzipped (TFX's way) or plain.

TFX writes Transform's materialized examples with ``file_name_suffix='.gz'`` and offers no
setting for it (``TransformProcessor._EncodeAndWrite`` in ``tfx/components/transform/executor.py``).
Transformed keyword-spotting features are 1,960 floats a clip; zlib at TFX's level compresses
them at about 39 MiB/s here, which took a fifth of Transform's time (pipeline/bench/SCALE.md). This
executor is TFX's, unchanged, except that its processor writes the TFRecords with the suffix of
the compression chosen in ``custom_config[COMPRESSION_CONFIG_KEY]`` (``none`` or ``gzip``; gzip
when absent). TFX's readers (Beam's TFRecord source, tfx_bsl's datasets) and ours
(``components.tfrecords``) tell the two apart by that suffix.
"""

from __future__ import annotations

import json
import types
from typing import Any, Callable, Dict, List

import apache_beam as beam
from tfx import types as tfx_types
from tfx.components.transform import executor as tfx_transform_executor
from tfx.components.transform import labels
from tfx.types import standard_component_specs

from components import tfrecords

# The custom_config key; the preprocessing_fn receives it too and may ignore it.
COMPRESSION_CONFIG_KEY = "transformed_examples_compression"
DEFAULT_COMPRESSION = tfrecords.DEFAULT_COMPRESSION


@beam.ptransform_fn
def EncodeAndWriteTFRecords(pcoll: beam.PCollection, schema: Any, output_path: str,
                            file_name_suffix: str) -> beam.pvalue.PDone:
    """TFX's TFRecord branch of ``_EncodeAndWrite`` (same steps and labels), with the file suffix given."""
    return (pcoll
            | "EncodeAndSerialize" >> beam.ParDo(tfx_transform_executor.TransformProcessor._RecordBatchToExamplesFn(schema))
            | "ExtractExamples" >> beam.Values()
            | "WriteToTFRecord" >> beam.io.WriteToTFRecord(output_path, file_name_suffix=file_name_suffix))


def processor_class(compression: str) -> type:
    """A ``TransformProcessor`` that writes TFRecords with ``compression`` (a key of ``tfrecords.COMPRESSIONS``).

    Raises:
        ValueError: an unknown compression, naming the config key and the known ones.
    """
    suffix = tfrecords.compression_suffix(
        compression, f"Transform's custom_config '{COMPRESSION_CONFIG_KEY}', from the pipeline config's "
                     "data.examples_compression")

    def encode_and_write(self, schema, file_format: str, output_path: str):
        if file_format != labels.FORMAT_TFRECORD:   # parquet and the like: TFX's own
            return tfx_transform_executor.TransformProcessor._EncodeAndWrite(
                schema=schema, file_format=file_format, output_path=output_path)
        return EncodeAndWriteTFRecords(schema=schema, output_path=output_path, file_name_suffix=suffix)

    return type(f"TransformProcessor_{compression}", (tfx_transform_executor.TransformProcessor,),
                {"_EncodeAndWrite": encode_and_write})


def do_with_processor(processor: type) -> Callable[..., None]:
    """TFX's ``Executor.Do`` with its ``TransformProcessor`` name bound to ``processor``.

    TFX's ``Do`` builds the processor by that module-level name and has no other way in; this is
    TFX's own function (same code, defaults and closure) over a copy of its module's namespace
    where that one name differs, so TFX's module and any other Transform in the process are
    untouched.
    """
    base = tfx_transform_executor.Executor.Do
    namespace = dict(base.__globals__, TransformProcessor=processor)
    return types.FunctionType(base.__code__, namespace, base.__name__, base.__defaults__, base.__closure__)


def compression_of(exec_properties: Dict[str, Any]) -> str:
    """The compression named in Transform's ``custom_config`` (``DEFAULT_COMPRESSION`` when absent)."""
    custom_config = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null") or {}
    return custom_config.get(COMPRESSION_CONFIG_KEY) or DEFAULT_COMPRESSION


class Executor(tfx_transform_executor.Executor):
    """TFX's Transform executor; the transformed examples are written with the configured compression."""

    def Do(self, input_dict: Dict[str, List[tfx_types.Artifact]], output_dict: Dict[str, List[tfx_types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        processor = processor_class(compression_of(exec_properties))   # an unknown one fails before any work
        do_with_processor(processor)(self, input_dict, output_dict, exec_properties)
