"""How long ``model.fit`` takes to return after its last step, when it trains to a step budget.

With a step budget (the ``train_steps`` run parameter, the scale bench's cap, the search's
``steps_per_epoch``) the Trainer repeats its dataset and stops after the budget's steps, so the
dataset's iterator is destroyed before it reaches its end. This bench trains the default model
to a budget, several times in one process, on the Trainer's own input pipeline (tfxio over
gzipped TFRecords, shuffled, batched) of random features of the default shape, alternating
between the dataset repeated as it is (tf.data's autotuning on) and as the Trainer repeats it
(``training.repeated``: autotuning off). Per fit: the wall seconds to the end of the last step,
the seconds after it until ``fit`` returned (the tail), the cores kept busy, and a digest of the
trained weights (every fit starts from the same seed and reads the same order, so all digests
should be one). Then, each in a fresh process, the training steps alone (batches cached in
memory) with TensorFlow's thread pools at their default, at one thread per op, and at one op
at a time: how much the second core buys the model's kernels.

``python -m pipeline.bench.budget_fit --workdir DIR [--fits 8] [--steps 300]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

# A fit whose tail is longer than this stalled (the evaluation-free tail is a few milliseconds).
STALL_SECONDS = 1.0
EXAMPLES = 6400
FILES = 2
LABEL_KEY = "label_id"


def write_examples(folder: str, feature_size: int, classes: int, seed: int = 0) -> str:
    """Random transformed examples (``features`` float [feature_size], ``label_id``) in gzipped TFRecords;
    returns their file pattern."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for number in range(FILES):
        with tf.io.TFRecordWriter(os.path.join(folder, f"examples-{number:05d}-of-{FILES:05d}.gz"), options) as writer:
            for _ in range(EXAMPLES // FILES):
                example = tf.train.Example(features=tf.train.Features(feature={
                    "features": tf.train.Feature(float_list=tf.train.FloatList(
                        value=rng.normal(size=feature_size).astype("float32"))),
                    LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(rng.integers(classes))])),
                }))
                writer.write(example.SerializeToString())
    return os.path.join(folder, "examples-*.gz")


def training_dataset(file_pattern: str, feature_size: int, batch_size: int, seed: int):
    """The Trainer's input pipeline over ``file_pattern``: tfxio batches, shuffled, one pass."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx_bsl.public import tfxio

    from pipeline.tasks.common import training

    schema = schema_pb2.Schema()
    features = schema.feature.add(name="features", type=schema_pb2.FLOAT)
    features.shape.dim.add(size=feature_size)
    features.presence.min_fraction = 1.0
    label = schema.feature.add(name=LABEL_KEY, type=schema_pb2.INT)
    label.shape.dim.add(size=1)
    label.presence.min_fraction = 1.0
    source = tfxio.TFExampleRecord(file_pattern, schema=schema)
    data = source.TensorFlowDataset(tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size, label_key=LABEL_KEY, num_epochs=1, shuffle=True, shuffle_seed=seed))
    return data.map(training.model_inputs)


def one_fit(build: Callable[[], Any], data, steps: int) -> Dict[str, Any]:
    """Trains a fresh model for ``steps`` on ``data`` (already repeated); the fit's timing and weights digest."""
    import numpy as np
    import tf_keras as keras

    last_step: List[float] = []

    class LastStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            last_step[:] = [time.monotonic()]

    keras.utils.set_random_seed(1)
    model = build()
    wall, cpu = time.monotonic(), time.process_time()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[LastStep()])
    end, cpu = time.monotonic(), time.process_time() - cpu
    digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()[:16]
    return {"steps_seconds": round(last_step[0] - wall, 3), "tail_seconds": round(end - last_step[0], 3),
            "fit_seconds": round(end - wall, 3), "cores": round(cpu / (end - wall), 2), "weights": digest}


def summarise(fits: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Median step time, the tails, how many fits stalled, and the distinct weights of one mode's fits."""
    return {"fits": len(fits), "median_steps_seconds": round(statistics.median(f["steps_seconds"] for f in fits), 3),
            "tails_seconds": [f["tail_seconds"] for f in fits],
            "stalled": sum(f["tail_seconds"] > STALL_SECONDS for f in fits),
            "median_cores": round(statistics.median(f["cores"] for f in fits), 2),
            "weights": sorted({f["weights"] for f in fits})}


def default_model():
    """The default config, and a builder of the model its hyperparameters file describes, as the Trainer
    builds it (the family's search module with the pipeline's model settings)."""
    import keras_tuner as kt

    from pipeline import pipeline as tinyml_pipeline
    from pipeline.config import DEFAULT_CONFIG, load_config
    from pipeline.tasks.common import search

    config = load_config(DEFAULT_CONFIG)
    settings = tinyml_pipeline.model_settings(config)
    with open(os.path.join(config.training.hyperparameters, "best_hyperparameters.txt")) as f:
        hp = kt.HyperParameters.from_config(json.load(f))
    build = search.builder(config.family.search_module, settings)
    frames, channels = settings["input_shape"]
    return config, (frames, channels), lambda: build(hp)


def run(workdir: str, fits: int, steps: int) -> Dict[str, Any]:
    """Alternates the two ways of repeating, ``fits`` fits each; the per-mode summaries and every fit."""
    from pipeline.tasks.common import training

    config, (frames, channels), build = default_model()
    pattern = write_examples(os.path.join(workdir, "examples"), frames * channels, len(config.data.labels))

    def data():  # made anew for every fit: the same shuffled order each time, so the same weights
        return training_dataset(pattern, frames * channels, config.training.batch_size, config.training.seed)

    modes = {"repeat() (autotuning on)": lambda: data().repeat(), "training.repeated (autotuning off)":
             lambda: training.repeated(data())}
    results: Dict[str, List[Dict[str, Any]]] = {mode: [] for mode in modes}
    one_fit(build, training.repeated(data()), 20)  # traces and warms up
    for _ in range(fits):
        for mode, make in modes.items():
            results[mode].append(one_fit(build, make(), steps))
    return {"steps": steps, "batch_size": config.training.batch_size, "input_shape": [frames, channels],
            "summary": {mode: summarise(r) for mode, r in results.items()}, "fits": results}


def kernel_child(intra: int, inter: int, steps: int) -> Dict[str, Any]:
    """Training steps alone (batches cached in memory, no input pipeline) with TensorFlow's thread pools
    set so; 0 keeps TensorFlow's default (one thread per core)."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    config, (frames, channels), build = default_model()
    rng = np.random.default_rng(0)
    batch = config.training.batch_size
    x = rng.normal(size=(batch * 50, frames * channels)).astype("float32")
    y = rng.integers(0, len(config.data.labels), size=batch * 50)
    data = tf.data.Dataset.from_tensor_slices(({"features": x}, y)).batch(batch).cache().repeat()
    model = build()
    model.fit(data, steps_per_epoch=20, epochs=1, verbose=0)  # traced here, not in the steps measured below
    wall, cpu = time.monotonic(), time.process_time()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    return {"intra_op_threads": intra, "inter_op_threads": inter, "ms_per_step": round(1000 * wall / steps, 2),
            "cores": round(cpu / wall, 2)}


# TensorFlow's pools per run: its default (a thread per core in each), one thread per op, one op at a time.
KERNEL_THREADS = ((0, 0), (1, 0), (1, 1))


def kernel_threads(steps: int) -> List[Dict[str, Any]]:
    """``kernel_child`` once per setting of ``KERNEL_THREADS``, each in a fresh process (TensorFlow fixes
    its pools when it starts)."""
    runs = []
    for intra, inter in KERNEL_THREADS:
        out = subprocess.run([sys.executable, "-m", "pipeline.bench.budget_fit", "--kernel-child", f"{intra},{inter}",
                              "--steps", str(steps)], check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return runs


def describe(result: Dict[str, Any]) -> str:
    lines = [f"Budgeted fits of {result['steps']} steps (batch {result['batch_size']}), alternating:"]
    for mode, s in result["summary"].items():
        lines.append(f"  {mode}: {s['stalled']} of {s['fits']} stalled (tail > {STALL_SECONDS:.0f} s); steps "
                     f"{s['median_steps_seconds']} s median, {s['median_cores']} cores; tails "
                     f"{', '.join(f'{t:.2f}' for t in s['tails_seconds'])} s; weights {', '.join(s['weights'])}")
    lines.append("Training steps alone (batches cached in memory), by TensorFlow's thread pools (0: its default):")
    for k in result.get("kernel_threads", []):
        lines.append(f"  intra-op {k['intra_op_threads']}, inter-op {k['inter_op_threads']}: {k['ms_per_step']} ms a "
                     f"step, {k['cores']} cores busy")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", help="where the random examples and budget_fit.json go (required)")
    parser.add_argument("--fits", type=int, default=8, help="fits per way of repeating")
    parser.add_argument("--steps", type=int, default=300, help="the step budget of each fit")
    parser.add_argument("--kernel-child", metavar="INTRA,INTER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.kernel_child:
        intra, inter = (int(n) for n in args.kernel_child.split(","))
        print(json.dumps(kernel_child(intra, inter, args.steps)))
        return 0
    if not args.workdir:
        parser.error("--workdir is required")
    result = run(args.workdir, args.fits, args.steps)
    result["kernel_threads"] = kernel_threads(args.steps)
    with open(os.path.join(args.workdir, "budget_fit.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(describe(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
