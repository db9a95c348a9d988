"""Our Transform executor (TFX's, with the transformed examples' compression as a setting) on the real
artifacts of a tiny pipeline run."""

import json
import os

import pytest
import tensorflow as tf
from google.protobuf import json_format
from tfx.components.transform import executor as tfx_transform_executor
from tfx.proto import transform_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs

from components import tfrecords
from components.transform import component as transform_component
from components.transform import executor
from pipeline import pipeline as tinyml_pipeline
from tests.helpers import make_artifact

SPLITS = ["train", "eval", "test"]


def _canonical(records):
    return [tf.train.Example.FromString(record).SerializeToString(deterministic=True) for record in records]


def _records(artifact, split):
    folder = artifact_utils.get_split_uri([artifact], split)
    files = sorted(os.path.join(folder, name) for name in os.listdir(folder))
    return files, [record.numpy() for record in tfrecords.record_dataset(files)]


@pytest.fixture(scope="module")
def run(tiny_pipeline_runs):
    config, (first, _, _) = tiny_pipeline_runs
    uris = first.artifact_uris
    schema_node = tinyml_pipeline.SCHEMA_GEN if tinyml_pipeline.SCHEMA_GEN in uris else \
        tinyml_pipeline.INFERRED_SCHEMA_GEN
    examples = make_artifact(standard_artifacts.Examples, uris[config.family.example_gen_id]["examples"],
                             split_names=artifact_utils.encode_split_names(SPLITS))
    theirs = make_artifact(standard_artifacts.Examples, uris[tinyml_pipeline.TRANSFORM]["transformed_examples"],
                           split_names=artifact_utils.encode_split_names(SPLITS))
    inputs = {standard_component_specs.EXAMPLES_KEY: [examples],
              standard_component_specs.SCHEMA_KEY: [make_artifact(standard_artifacts.Schema,
                                                                  uris[schema_node]["schema"])]}
    return config, inputs, theirs


def _transform(run, out, compression):
    config, inputs, _ = run
    transformed = make_artifact(standard_artifacts.Examples, out / "transformed_examples")
    outputs = {standard_component_specs.TRANSFORM_GRAPH_KEY: [make_artifact(standard_artifacts.TransformGraph,
                                                                            out / "transform_graph")],
               standard_component_specs.TRANSFORMED_EXAMPLES_KEY: [transformed]}
    custom_config = {**tinyml_pipeline.transform_config(config), executor.COMPRESSION_CONFIG_KEY: compression}
    props = {standard_component_specs.PREPROCESSING_FN_KEY: config.family.preprocessing_fn,
             standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(custom_config),
             standard_component_specs.SPLITS_CONFIG_KEY: json_format.MessageToJson(
                 transform_pb2.SplitsConfig(analyze=["train"], transform=SPLITS)),
             standard_component_specs.DISABLE_STATISTICS_KEY: 1,
             standard_component_specs.FORCE_TF_COMPAT_V1_KEY: 0}
    executor.Executor().Do(inputs, outputs, props)
    return transformed


def test_the_pipeline_writes_plain_transformed_examples_by_default(run):
    """data.examples_compression is none by default: Transform's files carry no ".gz" and are no gzip stream."""
    config, _, theirs = run
    assert config.data.examples_compression == "none"
    for split in SPLITS:
        files, records = _records(theirs, split)
        assert records and not any(name.endswith(tfrecords.GZIP_SUFFIX) for name in files)
        with open(files[0], "rb") as f:
            assert f.read(2) != b"\x1f\x8b"


def test_gzip_and_none_write_the_same_records_in_the_same_order(run, tmp_path):
    """The two settings differ in the files' compression only; the pipeline's own run wrote the same records."""
    _, _, theirs = run
    gzipped = _transform(run, tmp_path / "gzip", "gzip")
    plain = _transform(run, tmp_path / "none", "none")
    for split in SPLITS:
        gzip_files, gzip_records = _records(gzipped, split)
        plain_files, plain_records = _records(plain, split)
        assert all(name.endswith(".gz") for name in gzip_files)
        assert [os.path.basename(name) + ".gz" for name in plain_files] == [os.path.basename(name) for name in gzip_files]
        # the same examples in the same order, compared parsed: TFX's encoder does not fix the order of a feature
        # map's entries in the bytes (the two runs here wrote about 4 in 10 train records with them the other way)
        assert gzip_records and _canonical(gzip_records) == _canonical(plain_records) == \
            _canonical(_records(theirs, split)[1])
        example = tf.train.Example.FromString(plain_records[0])
        assert set(example.features.feature) == {"features", "label_id"}
    # TFX's own module is untouched: its processor still writes gzip for every other Transform
    tfx_processor = tfx_transform_executor.TransformProcessor
    assert (tfx_processor.__module__, tfx_processor.__name__) == (tfx_transform_executor.__name__, "TransformProcessor")


def test_tfx_builds_its_processor_by_the_name_the_executor_rebinds():
    """If TFX stops building ``TransformProcessor`` by name inside ``Executor.Do``, the rebinding would
    silently write gzip again: this fails first."""
    assert "TransformProcessor" in tfx_transform_executor.Executor.Do.__code__.co_names
    processor = executor.processor_class("none")
    assert executor.do_with_processor(processor).__globals__["TransformProcessor"] is processor


def test_an_unknown_compression_is_refused_naming_the_setting(run, tmp_path):
    with pytest.raises(ValueError, match=r"'zstd'.*transformed_examples_compression.*data\.examples_compression"
                                         r".*none, gzip"):
        _transform(run, tmp_path / "zstd", "zstd")
    assert not (tmp_path / "zstd" / "transformed_examples").exists()
    with pytest.raises(ValueError, match="'lz4'"):
        transform_component.Transform(examples=None, schema=None, preprocessing_fn="x.y", compression="lz4")
