"""The base of our ExampleGens: every file is planned before Beam runs, and splits are written as they stream.

TFX's ``BaseExampleGenExecutor.Do`` writes each split through ``write_split.WriteSplit``, which puts a
``Reshuffle`` before the TFRecord sink. On Beam's in-process DirectRunner a Reshuffle is a GroupByKey,
and a GroupByKey holds its whole input in memory: every serialized example of the split. Measured on
the default keyword-spotting data (``AudioExampleGen`` alone, peak RSS of the process): 1,974 MB at 1x
and 3,890 MB at 3x with it; 1,126 MB and 1,160 MB without (``make bench-scale`` measures the pipeline).

Our ExampleGens do not need that shuffle: their ``GenerateExamplesByBeam`` starts from a planned list
of files, reshuffled as it enters the pipeline (``ReadPlan`` below), so work is already spread over
workers on a distributed runner, and on the DirectRunner the written examples are the same, in the same order, with and without
it (checked on all three splits at 3x). So this executor is TFX's ``Do`` with the write step as an
overridable method (``write_split``): serialize and write.

What the Reshuffle did not do either is mix the labels: plans are sorted by path, and the dataset
layouts keep one label per folder, so in plan order a split is written as long runs of one label (the
3x default data's train split came as 17 runs, the longest 2,740 examples). A Trainer's shuffle buffer
shorter than such a run fills its first batches from the labels written first. ``write_order``
therefore permutes every plan with the config's seed: mixed, and the same on every run.

The plan reaches Beam as files, not as elements: ``beam.Create(plan, reshuffle=True)`` pickles every
planned item into the pipeline graph and its Reshuffle holds each one as an element. ``ReadPlan``
writes the shuffled plan as JSON-lines chunks of ``PLAN_CHUNK_ITEMS`` items next to the output, creates
one element per chunk (reshuffled, so a distributed runner still spreads the chunks over its workers)
and reads each chunk where it is processed; the chunks are deleted when the examples are written.
Measured on the in-process DirectRunner, the plan alone through a pipeline that counts it (230,000
clips, 30x the default data; peak RSS above the process with the plan built; ``python -m
pipeline.bench.plan_memory``): ``beam.Create`` 397 MiB and 48.2 s, ``ReadPlan`` 12 MiB and 3.8 s.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
import random
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type, TypeVar

import apache_beam as beam
from absl import logging
from tfx.components.example_gen import base_example_gen_executor, utils, write_split as tfx_write_split
from tfx.dsl.io import fileio
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import tfrecords

T = TypeVar("T")
# Planned items per chunk file: a chunk is the unit a distributed runner hands to a worker.
PLAN_CHUNK_ITEMS = 512
# The folder in the output Examples artifact that holds the plan's chunks while Beam runs.
PLAN_FOLDER = ".plan"
# Reads in flight ahead of the decoder when ``ReadPlan`` is given a ``fetch`` (one thread each).
FETCH_AHEAD = 8
# The exec property naming how the examples' TFRecords are written, and its values: plain, or gzipped
# as TFX's ExampleGens write them. Readers (Beam's TFRecord source, tfx_bsl's datasets) tell them
# apart by the ".gz" suffix.
COMPRESSION_KEY = "compression"
COMPRESSIONS = tfrecords.COMPRESSIONS
DEFAULT_COMPRESSION = tfrecords.DEFAULT_COMPRESSION


def write_order(plan: Sequence[T], seed: int) -> List[T]:
    """The planned items in the order their examples are written: a permutation drawn from ``seed``.

    Args:
        plan: the planned clips or recordings, in any order (ours are sorted by split and path).
        seed: the config's data seed; the same seed gives the same order on every run of the
            in-process runner with one worker. With several workers Beam's sink numbers its shards in
            the order the workers finish, so the files and their order change from run to run
            (measured: the scale bench's read-order comparison).

    Returns:
        A new list with the items of ``plan``, shuffled.
    """
    order = list(plan)
    random.Random(seed).shuffle(order)
    return order


def write_plan_chunks(plan: Sequence[Any], folder: str, chunk_items: int = PLAN_CHUNK_ITEMS) -> List[str]:
    """Writes ``plan`` (flat dataclasses of JSON-able fields), in order, as JSON-lines chunk files.

    Returns:
        The chunk files' paths, in plan order.
    """
    fileio.makedirs(folder)
    paths = []
    for number, start in enumerate(range(0, len(plan), chunk_items)):
        path = os.path.join(folder, f"chunk-{number:06d}.jsonl")
        with fileio.open(path, "w") as f:
            f.write("".join(json.dumps(dataclasses.astuple(item)) + "\n" for item in plan[start:start + chunk_items]))
        paths.append(path)
    return paths


def read_plan_chunk(path: str, item_type: Type[T]) -> Iterator[T]:
    """The items of one chunk file written by ``write_plan_chunks``, in order."""
    with fileio.open(path, "r") as f:
        for line in f:
            yield item_type(*json.loads(line))


class _FetchAhead(beam.DoFn):
    """Each chunk's items in order, each with ``fetch(item)``, which up to ``ahead`` threads run in advance.

    A decoder that reads its input file itself waits for every read: from a disk that does not hold
    the data in its cache, that wait is added to every clip. Reading ahead overlaps it with the
    decoding of the clips before; the items still leave in the chunk's order, so the written order
    does not change. An error of ``fetch`` is raised when its item's turn comes, as a read in the
    decoder would have raised it. ``ahead`` 0 fetches each item when its turn comes, without threads.
    """

    def __init__(self, item_type: Type[T], fetch: Callable[[T], Any], ahead: int):
        self._item_type = item_type
        self._fetch = fetch
        self._ahead = ahead
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None

    def setup(self) -> None:
        if self._ahead > 0:
            self._pool = concurrent.futures.ThreadPoolExecutor(self._ahead, thread_name_prefix="fetch-ahead")

    def process(self, chunk_path: str) -> Iterator[Tuple[T, Any]]:
        if self._pool is None:
            for item in read_plan_chunk(chunk_path, self._item_type):
                yield item, self._fetch(item)
            return
        in_flight: collections.deque = collections.deque()
        for item in read_plan_chunk(chunk_path, self._item_type):
            in_flight.append((item, self._pool.submit(self._fetch, item)))
            if len(in_flight) > self._ahead:
                done, future = in_flight.popleft()
                yield done, future.result()
        while in_flight:
            done, future = in_flight.popleft()
            yield done, future.result()

    def teardown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@beam.ptransform_fn
def ReadPlan(pipeline: beam.Pipeline, chunk_paths: Sequence[str], item_type: Type[T],  # noqa: N802
             fetch: Optional[Callable[[T], Any]] = None, fetch_ahead: int = FETCH_AHEAD) -> beam.pvalue.PCollection:
    """The planned items of the chunk files (``write_plan_chunks``) as a PCollection: neither the pipeline
    graph nor a shuffle holds the plan. (A transform's arguments are pickled into the graph, so it takes
    the chunks' paths, never the plan: 163 MiB and 7 s more at 230,000 clips when it took the plan.)

    With ``fetch`` (a picklable function of one item, e.g. reading its file), the elements are
    ``(item, fetch(item))`` pairs, fetched up to ``fetch_ahead`` items ahead by as many threads.
    """
    chunks = pipeline | "Chunks" >> beam.Create(list(chunk_paths), reshuffle=True)
    if fetch is None:
        return chunks | "Read" >> beam.FlatMap(read_plan_chunk, item_type)
    return chunks | "ReadAhead" >> beam.ParDo(_FetchAhead(item_type, fetch, fetch_ahead))


def compression_suffix(compression: str) -> str:
    """The file suffix of the ExampleGen's ``compression`` (``tfrecords.compression_suffix``).

    Raises:
        ValueError: an unknown compression, naming the exec property and the known ones.
    """
    return tfrecords.compression_suffix(compression, f"exec property '{COMPRESSION_KEY}'")


@beam.ptransform_fn
def WriteSplitAsItStreams(examples: beam.pvalue.PCollection, output_split_path: str,  # noqa: N802 (Beam's naming)
                          compression: str = DEFAULT_COMPRESSION) -> beam.pvalue.PDone:
    """Serialized examples into TFRecords (gzipped or plain, ``COMPRESSIONS``), without a shuffle that would
    hold the split in memory. Beam's sink compresses by the file suffix."""
    return (examples
            | "MaybeSerialize" >> beam.ParDo(tfx_write_split.MaybeSerialize())
            | "Write" >> beam.io.WriteToTFRecord(os.path.join(output_split_path, tfx_write_split.DEFAULT_FILE_NAME),
                                                 file_name_suffix=compression_suffix(compression)))


class PlannedExampleGenExecutor(base_example_gen_executor.BaseExampleGenExecutor):
    """TFX's ExampleGen executor for sources planned up front, writing splits without a pre-write shuffle."""

    # Reads in flight ahead of the decoder, when ``read_plan`` is given a ``fetch``.
    fetch_ahead = FETCH_AHEAD
    _compression = DEFAULT_COMPRESSION   # Do sets it from the exec property

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        raise NotImplementedError(f"{type(self).__name__} builds all splits at once in GenerateExamplesByBeam.")

    def read_plan(self, plan: Sequence[T], item_type: Type[T], seed: int,
                  fetch: Optional[Callable[[T], Any]] = None) -> beam.PTransform:
        """The transform that brings the plan into the pipeline, in ``write_order(plan, seed)``; with
        ``fetch``, as ``(item, fetch(item))`` pairs read ahead (``ReadPlan``)."""
        return ReadPlan(write_plan_chunks(write_order(plan, seed), self._plan_folder), item_type, fetch,
                        fetch_ahead=self.fetch_ahead)

    def write_split(self, output_split_path: str) -> beam.PTransform:
        """The transform that writes one split's examples (override to write elsewhere or in another format)."""
        return WriteSplitAsItStreams(output_split_path, self._compression)

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        # BaseExampleGenExecutor.Do (TFX 1.21) with self.write_split in place of write_split.WriteSplit.
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        outputs = output_dict[standard_component_specs.EXAMPLES_KEY]
        examples_artifact = artifact_utils.get_single_instance(outputs)
        examples_artifact.split_names = artifact_utils.encode_split_names(
            utils.generate_output_split_names(input_config, output_config))
        output_file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY,
                                                 example_gen_pb2.FILE_FORMAT_UNSPECIFIED)
        logging.info("Generating examples.")
        self._plan_folder = os.path.join(examples_artifact.uri, PLAN_FOLDER)
        self._compression = exec_properties.get(COMPRESSION_KEY) or DEFAULT_COMPRESSION
        compression_suffix(self._compression)  # an unknown one fails before anything is read
        try:
            with self._make_beam_pipeline() as pipeline:
                for split_name, examples in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                    _ = examples | f"WriteSplit[{split_name}]" >> self.write_split(
                        artifact_utils.get_split_uri(outputs, split_name))
        finally:
            if fileio.exists(self._plan_folder):
                fileio.rmtree(self._plan_folder)
        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        for artifact in outputs:
            if payload_format:
                examples_utils.set_payload_format(artifact, payload_format)
            if output_file_format:
                examples_utils.set_file_format(artifact, tfx_write_split.to_file_format_str(output_file_format))
        logging.info("Examples generated.")
