"""Continuous training's measurements: which spans a run's examples hold, and how much a retrain recovers.

``accuracy_by_span`` runs int8 models on TFLite Micro over one split of a run's examples, counted per span
(the span folder that starts each example's ``source``): the original distribution and each field span
apart. ``record_retrain`` keeps such a comparison beside the telemetry (``retrains.json``), where the
monitoring report shows it.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
from typing import Any, Dict, List

import numpy as np

from pipeline import monitoring
from pipeline.config import PipelineConfig

RETRAINS_FILE = "retrains.json"
SPLIT = "test"


def spans_workdir_config(config_file: str, workdir: str, training_spans: int = 2) -> PipelineConfig:
    """``config_file``'s config in ``workdir`` with a data root of spans (``workdir/data``; span 0 is where the
    config's synthetic dataset goes), training on the newest ``training_spans``."""
    import dataclasses

    from pipeline import config as config_lib
    from pipeline.tasks.common import datasets

    base = config_lib.load_config(config_file)
    workdir = os.path.abspath(workdir)
    data_root = os.path.join(workdir, "data")
    config = dataclasses.replace(base, data=dataclasses.replace(base.data, root=data_root,
                                                                training_spans=training_spans)).with_workdir(workdir)
    datasets.ensure_dataset(base.family.generation_spec(base), os.path.join(data_root, datasets.span_folder(0)),
                            base.family.generate_dataset)
    return config


def quantized_model(summary) -> bytes:
    """A run's int8 flatbuffer."""
    with open(os.path.join(summary.artifact_uris["TFLiteQuantizer"]["quantized_model"], "model.tflite"), "rb") as f:
        return f.read()


def accuracy_by_span(examples_uri: str, transform_graph_uri: str, models: Dict[str, bytes], labels: List[str],
                     split: str = SPLIT) -> Dict[str, Dict[str, Any]]:
    """Each int8 model's accuracy on TFLite Micro over ``split`` of an Examples artifact, per span (the span
    folder that starts each example's ``source``), features from the transform graph.

    Returns:
        model name -> span folder -> ``examples``, ``accuracy`` and ``per_class`` accuracy.
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    from components import model_evaluation, tfrecords
    from components.tflm import model as tflm_model, runtime

    transform = tft.TFTransformOutput(transform_graph_uri)
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    raw = tfrecords.record_dataset(files).batch(256).map(
        lambda s: tf.io.parse_example(s, {**transform.raw_feature_spec(),
                                          "source": tf.io.FixedLenFeature([], tf.string)}))
    features, label_ids, spans = [], [], []
    for batch in raw:
        sources = [s.decode() for s in batch.pop("source").numpy()]
        out = transform.transform_raw_features({k: v for k, v in batch.items() if k in transform.raw_feature_spec()})
        features.append(out[model_evaluation.FEATURES_FEATURE].numpy())
        label_ids.append(out[model_evaluation.LABEL_FEATURE].numpy().reshape(-1))
        spans += [s.split("/", 1)[0] for s in sources]
    x, y, spans = np.concatenate(features), np.concatenate(label_ids), np.asarray(spans)
    result: Dict[str, Dict[str, Any]] = {}
    for name, model in models.items():
        shape = tflm_model.describe(model)["inputs"][0]["shape"][1:]
        predicted = runtime.predict(model, x.reshape([-1] + list(shape))).argmax(axis=1)
        result[name] = {}
        for span in sorted(set(spans)):
            inside = spans == span
            per_class = {labels[c]: round(float(np.mean(predicted[inside & (y == c)] == c)), 4)
                         for c in range(len(labels)) if np.any(inside & (y == c))}
            result[name][span] = {"examples": int(inside.sum()),
                                  "accuracy": round(float(np.mean(predicted[inside] == y[inside])), 4),
                                  "per_class": per_class}
    return result


def spans_read(config: PipelineConfig, summary) -> str:
    """The ``spans_read`` ML Metadata records on the run's ExampleGen output."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from components.ingestion import SPANS_READ_PROPERTY

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    store = metadata_store.MetadataStore(connection)
    uri = summary.artifact_uris[config.family.example_gen_id]["examples"]
    artifact = next(a for a in store.get_artifacts_by_uri(uri))
    return artifact.custom_properties[SPANS_READ_PROPERTY].string_value


def compare_runs(config: PipelineConfig, before, after, split: str = SPLIT) -> Dict[str, Any]:
    """Run ``before``'s and ``after``'s int8 models on ``after``'s examples (which hold every span it trained on)."""
    uris = after.artifact_uris
    return {"before": {"run_id": before.run_id, "spans_read": spans_read(config, before)},
            "after": {"run_id": after.run_id, "spans_read": spans_read(config, after)}, "split": split,
            "accuracy": accuracy_by_span(uris[config.family.example_gen_id]["examples"],
                                         uris["Transform"]["transform_graph"],
                                         {"before": quantized_model(before), "after": quantized_model(after)},
                                         list(config.data.labels), split)}


def record_retrain(config: PipelineConfig, comparison: Dict[str, Any]) -> str:
    """Appends ``comparison`` (``compare_runs``) to the telemetry root's ``retrains.json``; returns its path."""
    path = os.path.join(monitoring.telemetry_root(config), RETRAINS_FILE)
    entries = retrains(config)
    entries.append({**comparison, "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    return path


def retrains(config: PipelineConfig) -> List[Dict[str, Any]]:
    """Every recorded retrain comparison, oldest first (none when the file does not exist)."""
    path = os.path.join(monitoring.telemetry_root(config), RETRAINS_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return json.load(f)
