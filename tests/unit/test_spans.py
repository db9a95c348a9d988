"""Span-based input without TFX: which span folders an ExampleGen reads, what ML Metadata records,
and the config's rules for data.training_spans."""

from __future__ import annotations

import os

import pytest

from components import ingestion
from pipeline import config as config_lib
from pipeline.runners import local as run_local
from pipeline.tasks.base import DataLayoutError
from pipeline.tasks.common import datasets
from tests.helpers import default_config_text


def _spans_root(tmp_path, *names):
    root = tmp_path / "data"
    for name in names:
        (root / name).mkdir(parents=True)
    return str(root)


def test_span_folders_are_found_in_span_order_and_others_ignored(tmp_path):
    root = _spans_root(tmp_path, "span-0", "span-10", "span-2", "span-03", "span-x", "notes", "span-", "span-\u00b2")
    assert list(datasets.span_folders(root)) == [0, 2, 10]
    assert datasets.span_folders(root)[10] == os.path.join(root, "span-10")
    assert datasets.span_folders(str(tmp_path / "absent")) == {}
    assert datasets.dataset_folders(root, spans=False) == [root]


class _Artifact:
    def __init__(self):
        self.properties = {}

    def set_string_custom_property(self, key, value):
        self.properties[key] = value

    set_int_custom_property = set_string_custom_property


def _roots(root, newest, spans):
    props = {"input_base": root + "/", ingestion.SPAN_FOLDER_KEY: datasets.SPAN_FOLDER,
             ingestion.SPAN_PROPERTY: newest, ingestion.SPANS_KEY: spans}
    return ingestion.dataset_roots(props, ingestion.gfile_filesystem()), props


def test_an_example_gen_reads_the_newest_spans_up_to_its_window(tmp_path):
    root = _spans_root(tmp_path, "span-0", "span-1", "span-2", "span-4")
    roots, props = _roots(root, 4, 3)
    # span 3 is absent (never written): the window 2..4 reads what exists, oldest first
    assert roots == [("span-2", f"{root}/span-2"), ("span-4", f"{root}/span-4")]
    artifact = _Artifact()
    ingestion.record_spans_read(artifact, [prefix for prefix, _ in roots], props)
    assert artifact.properties == {ingestion.SPANS_READ_PROPERTY: "2,4"}
    assert _roots(root, 1, 5)[0] == [("span-0", f"{root}/span-0"), ("span-1", f"{root}/span-1")]
    assert _roots(root, 0, 1)[0] == [("span-0", f"{root}/span-0")]


def test_without_a_driver_the_newest_span_folder_is_read(tmp_path):
    """On Kubeflow, TFX runs no span driver for these ExampleGens: the executor finds the newest span."""
    root = _spans_root(tmp_path, "span-0", "span-1", "span-07", "span-x")
    props = {"input_base": root, ingestion.SPAN_FOLDER_KEY: datasets.SPAN_FOLDER, ingestion.SPANS_KEY: 2}
    roots = ingestion.dataset_roots(props, ingestion.gfile_filesystem())
    assert roots == [("span-0", f"{root}/span-0"), ("span-1", f"{root}/span-1")]
    artifact = _Artifact()
    ingestion.record_spans_read(artifact, [prefix for prefix, _ in roots], props)
    assert artifact.properties == {ingestion.SPANS_READ_PROPERTY: "0,1", ingestion.SPAN_PROPERTY: 1}


def test_without_span_folders_the_root_is_the_dataset_and_nothing_is_recorded(tmp_path):
    roots = ingestion.dataset_roots({"input_base": str(tmp_path) + "/"}, ingestion.gfile_filesystem())
    assert roots == [("", str(tmp_path))]
    artifact = _Artifact()
    ingestion.record_spans_read(artifact, [], {"input_base": str(tmp_path)})
    assert artifact.properties == {}


def _config(tmp_path, data_lines):
    text = default_config_text().replace("  root: null", data_lines)
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path)


def test_training_spans_need_a_data_root_of_spans(tmp_path):
    with pytest.raises(config_lib.ConfigError, match=r"data.training_spans.*data.root is null"):
        config_lib.load_config(_config(tmp_path, "  root: null\n  training_spans: 2"))
    with pytest.raises(config_lib.ConfigError, match="training_spans"):
        config_lib.load_config(_config(tmp_path, f"  root: {tmp_path}\n  training_spans: -1"))


def test_a_data_root_without_span_folders_is_refused_before_the_run(tmp_path):
    root = _spans_root(tmp_path, "speech")
    config = config_lib.load_config(_config(tmp_path, f"  root: {root}\n  training_spans: 2")).with_workdir(
        str(tmp_path / "w"))
    with pytest.raises(DataLayoutError, match=r"no span folder \(span-0, span-1"):
        config.family.dataset_root(config)
    with pytest.raises(config_lib.ConfigError, match="span-0"):
        run_local.preflight(config)
