"""TelemetryExampleGen: a FileBasedExampleGen over a telemetry dataset's spans (``span-N/summaries.jsonl``)."""

from __future__ import annotations

from typing import Optional

from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2

from components.telemetry import ingest
from components.telemetry_example_gen import executor

SPLIT = "telemetry"    # the one output split
SPAN_PATTERN = f"{ingest.SPAN_PREFIX}{{SPAN}}/{ingest.SUMMARIES_FILE}"


def input_config() -> example_gen_pb2.Input:
    """One split over the spans; TFX's driver resolves ``{SPAN}`` (the latest, or the range)."""
    return example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=SPLIT, pattern=SPAN_PATTERN)])


def output_config() -> example_gen_pb2.Output:
    """Every record in the one split (FileBasedExampleGen would cut a single input split 2:1)."""
    return example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
        splits=[example_gen_pb2.SplitConfig.Split(name=SPLIT, hash_buckets=1)]))


class TelemetryExampleGen(FileBasedExampleGen):
    """A telemetry span's summary records as tf.Examples, one per device and period, in split ``telemetry``.

    Features: ``components/telemetry/examples.py``. Without ``range_config`` TFX's driver takes
    the latest span; ``range_config`` (``RangeConfig``) picks a span or a range.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, range_config: Optional[range_config_pb2.RangeConfig] = None):
        """Constructs a TelemetryExampleGen.

        Args:
            input_base: the telemetry dataset (``tinyml-tfx telemetry ingest`` writes its spans).
            range_config: the span(s) to read; None: the latest.
        """
        super().__init__(input_base=input_base, input_config=input_config(), output_config=output_config(),
                         range_config=range_config)
