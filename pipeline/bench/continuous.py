"""`make bench-continuous`: continuous training on a field span, and the accuracy it recovers.

Steps (measured on this machine; printed and saved to WORKDIR/continuous.json):

1. A data root of spans: span-0 is the config's synthetic dataset; ``data.training_spans`` is 2.
2. Run 1 of the config's pipeline: the ExampleGen reads span 0 only; model A.
3. A field campaign under ``--shift`` (``tinyml-tfx fleet collect``): ``--minutes`` of audio from ``--voices`` new
   voices, labelled by the simulator's ground truth, written as span-1.
4. Run 2: the ExampleGen reads spans 0 and 1 (ML Metadata's ``spans_read`` is checked); model B.
5. Both int8 models on TFLite Micro, on run 2's test split (the same examples for both), per span: span 0 is
   the original distribution, span 1 the shifted one, voices neither model trained on. Features come
   from run 2's transform graph; with no analyzers in the keyword-spotting Transform they equal run 1's.

Usage: python -m pipeline.bench.continuous --config pipeline/configs/kws.yaml --workdir work/bench-continuous
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import time
from typing import Any, Dict, List

import numpy as np

from pipeline import config as config_lib

SPLIT = "test"


def _model(summary) -> bytes:
    with open(os.path.join(summary.artifact_uris["TFLiteQuantizer"]["quantized_model"], "model.tflite"), "rb") as f:
        return f.read()


def accuracy_by_span(examples_uri: str, transform_graph_uri: str, models: Dict[str, bytes], labels: List[str],
                     split: str = SPLIT) -> Dict[str, Dict[str, Any]]:
    """Each int8 model's accuracy on TFLite Micro over ``split`` of an Examples artifact, per span (the span
    folder that starts each example's ``source``), features from the transform graph."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from components import model_evaluation
    from components.tflm import model as tflm_model, runtime

    transform = tft.TFTransformOutput(transform_graph_uri)
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    raw = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(256).map(
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


def _spans_read(config, summary) -> str:
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


def _run(config, base, args, data_root: str, figures: Dict[str, Any]):
    """Steps 1-4: span 0, run 1, the field span, run 2 (figures filled in as they are measured)."""
    from pipeline.runners import local as run_local
    from pipeline.tasks.common import datasets

    family = config.family
    started = time.time()
    datasets.ensure_dataset(family.generation_spec(base), os.path.join(data_root, datasets.span_folder(0)),
                            family.generate_dataset)
    figures["span0_seconds"] = round(time.time() - started, 1)
    if 1 in datasets.span_folders(data_root):
        raise SystemExit(f"{data_root}/span-1 exists: this benchmark measures the first retrain; remove {os.path.dirname(data_root)}.")
    started = time.time()
    first = run_local.run(config)
    figures["run1_seconds"] = round(time.time() - started, 1)
    print(f"Run 1 (span 0): {first.run_id}, {figures['run1_seconds']} s, spans read {_spans_read(config, first)}")

    started = time.time()
    manifest = family.write_field_span(config, args.shift, args.minutes, args.voices, 1,
                                       os.path.join(data_root, datasets.span_folder(1)), log=print)
    figures["collect_seconds"] = round(time.time() - started, 1)
    figures["field_span"] = {k: manifest[k] for k in ("clips", "examples_before_sampling", "label_source", "voices",
                                                      "snr_db")}
    started = time.time()
    second = run_local.run(config)
    figures["run2_seconds"] = round(time.time() - started, 1)
    figures["run2_spans_read"] = _spans_read(config, second)
    print(f"Run 2 (spans 0-1): {second.run_id}, {figures['run2_seconds']} s, spans read {figures['run2_spans_read']}")

    return first, second


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=config_lib.DEFAULT_CONFIG)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--shift", default="rain")
    parser.add_argument("--minutes", type=float, default=60.0, help="Audio the field campaign records.")
    parser.add_argument("--voices", type=int, default=20, help="New voices in the field campaign.")
    parser.add_argument("--runs", default=None,
                        help="RUN1,RUN2: evaluate two earlier runs of this workdir instead of running (see step 5).")
    args = parser.parse_args(argv)

    from pipeline.runners import local as run_local

    workdir = os.path.abspath(args.workdir)
    base = config_lib.load_config(args.config)
    data_root = os.path.join(workdir, "data")
    config = dataclasses.replace(base, data=dataclasses.replace(base.data, root=data_root, training_spans=2)
                                 ).with_workdir(workdir)
    family = config.family
    figures: Dict[str, Any] = {"config": args.config, "shift": args.shift, "minutes": args.minutes,
                               "voices": args.voices}

    if args.runs:
        saved = os.path.join(workdir, "continuous.json")
        if os.path.exists(saved):
            with open(saved, encoding="utf-8") as f:
                figures.update(json.load(f))
        first, second = (run_local.summarise(config, 0.0, run_id) for run_id in args.runs.split(","))
        with open(os.path.join(data_root, "span-1", "DATASET.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        figures["field_span"] = {k: manifest[k] for k in ("clips", "examples_before_sampling", "label_source",
                                                          "voices", "snr_db")}
    else:
        first, second = _run(config, base, args, data_root, figures)
    uris = second.artifact_uris
    figures["accuracy"] = accuracy_by_span(uris[family.example_gen_id]["examples"], uris["Transform"]["transform_graph"],
                                           {"A (span 0)": _model(first), "B (spans 0-1)": _model(second)},
                                           list(config.data.labels))
    figures["runs"] = {name: {"run_id": r.run_id, "eval_accuracy": r.eval_accuracy, "blessed": r.blessed,
                              "test": r.test, "released": bool(r.release)} for name, r in (("run1", first),
                                                                                         ("run2", second))}
    print(f"\nInt8 accuracy on TFLite Micro, {SPLIT} split of run 2's examples (measured):")
    print(f"{'model':<16}{'span':<9}{'examples':>9}{'accuracy':>10}")
    for name, spans in figures["accuracy"].items():
        for span, row in spans.items():
            print(f"{name:<16}{span:<9}{row['examples']:>9}{row['accuracy']:>10.4f}")
    with open(os.path.join(workdir, "continuous.json"), "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=2, sort_keys=True)
    print(f"Saved {os.path.join(workdir, 'continuous.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
