"""Helpers for tests: a tiny dataset spec and configs that point at it."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re

import numpy as np
import pytest

from pipeline import config as config_lib
from pipeline.tasks.kws import generate

TINY_WORDS = ("yes", "no", "up")
TINY_UNKNOWN_WORDS = ("cat", "dog")
# The end-to-end runs name one class as real datasets may: a capital, a hyphen, a non-ASCII letter.
E2E_WORDS = ("yes", "no", "Up-Ñ")
TINY_STREAM_MINUTES = 0.25   # the streaming evaluation of the end-to-end runs: 15 s of audio


def default_config_text() -> str:
    """The default config's text, its relative paths made absolute (so a copy elsewhere still finds them)."""
    with open(config_lib.DEFAULT_CONFIG, encoding="utf-8") as f:
        text = f.read()
    configs = os.path.dirname(config_lib.DEFAULT_CONFIG)
    return re.sub(r"(hyperparameters|schema): (\.\./\S+)",
                  lambda m: f"{m.group(1)}: {os.path.normpath(os.path.join(configs, m.group(2)))}", text)


def tiny_spec(seed: int = 7) -> generate.GenerationSpec:
    """A dataset that generates in seconds: 3 words, 2 unknown words, 10 speakers."""
    return generate.GenerationSpec(words=TINY_WORDS, unknown_words=TINY_UNKNOWN_WORDS, speakers=10,
                                   repetitions=3, noise_seconds=10, seed=seed)


def write_schema_for(labels, path: str) -> str:
    """Writes the packaged curated schema with its label domain replaced by ``labels``."""
    with open(config_lib.DEFAULT_SCHEMA) as f:
        text = f.read()
    head = text[:text.index("string_domain")]
    domain = 'string_domain {\n  name: "label"\n' + "".join(f'  value: "{l}"\n' for l in labels) + "}\n"
    with open(path, "w") as f:
        f.write(head + domain)
    return path


def rename_class_folder(root: str, old: str, new: str) -> None:
    """Renames a class folder of a dataset, and its entries in the split lists."""
    os.rename(os.path.join(root, old), os.path.join(root, new))
    for name in ("validation_list.txt", "testing_list.txt"):
        path = os.path.join(root, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join((new + line[len(old):] if line.startswith(old + "/") else line) + "\n"
                                for line in lines))


def tiny_config(workdir: str, data_root: str, words=TINY_WORDS) -> config_lib.PipelineConfig:
    """The default config scaled down to the tiny dataset, with run directories under ``workdir``."""
    base = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    os.makedirs(workdir, exist_ok=True)
    # unknown_fraction as the tiny splits were sized for (the default draws one _unknown_ per keyword example)
    data = dataclasses.replace(base.data, words=tuple(words), root=data_root, unknown_fraction=0.1)
    data = dataclasses.replace(data, schema=write_schema_for(data.labels, os.path.join(workdir, "schema.pbtxt")))
    return dataclasses.replace(
        base,
        pipeline_name="kws-tiny",
        data=data,
        # One speaker per eval and test split: 3 clips of each word, 1 of silence and of unknown; 11 eval
        # clips in all, so one clip that int8 classifies otherwise is 9 points (the quantizer allows that).
        # A tiny model misses most keywords of a stream: the streaming evaluator reports, and does not gate.
        requirements=config_lib.Requirements(min_accuracy=0.3, max_regression=0.5, max_quantization_drop=0.1,
                                             min_train_examples_per_class=5, min_eval_examples_per_class=1,
                                             max_false_reject_rate=1.0),
        # training.model at width 32, not the repository's searched model: a tiny, fast DS-CNN for the tiny data
        # (tests/e2e/test_model_search.py covers the hyperparameters file and the search). 50 epochs: with the
        # warmed-up front end's features, 20 left it finding none of a stream's keywords (measured: FRR 1.0 at
        # 20 epochs, 0.0 at 50, on the streaming evaluator test's minute of stream).
        training=dataclasses.replace(base.training, epochs=50, batch_size=16, width=32, hyperparameters=None),
        streaming=dataclasses.replace(base.streaming, minutes=TINY_STREAM_MINUTES),
    ).with_workdir(workdir)


# A tiny classifier with known layer shapes, for the quantizer and the size gate.
SHAPE = (8, 4)
CLASSES = ("low", "mid", "high")


def tiny_model_data(n, seed):
    """Features [n, 8, 4] and labels; each class lights up its own rows."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n,) + SHAPE).astype(np.float32)
    for i, label in enumerate(labels):
        x[i, label * 2:label * 2 + 3, :] += 3.0
    return x, labels


def build_tiny_saved_model(path: str) -> str:
    """Trains the tiny classifier (Conv2D 4x3x3, DepthwiseConv2D 3x3, GAP, Dense 3) and saves it
    with a ``serving_features`` signature taking [batch, 8, 4]."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(SHAPE[0] * SHAPE[1],))
    x = keras.layers.Reshape(SHAPE + (1,))(inputs)
    x = keras.layers.Conv2D(4, (3, 3), padding="same", activation="relu")(x)
    x = keras.layers.DepthwiseConv2D((3, 3), padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = tiny_model_data(600, 1)
    model.fit(x.reshape(len(x), -1), y, epochs=30, verbose=0)

    @tf.function(input_signature=[tf.TensorSpec([None, *SHAPE], tf.float32, name="features")])
    def serve_features(features):
        return {"probabilities": model(tf.reshape(features, [-1, SHAPE[0] * SHAPE[1]]))}

    tf.saved_model.save(model, path, signatures={"serving_features": serve_features})
    return path


def write_tiny_board(folder, name: str = "tiny_mcu", flash_kib: int = 64, ram_kib: int = 16,
                     reserved_flash_kib: int = 8, reserved_ram_kib: int = 8) -> str:
    """Writes a made-up, deliberately small board profile into ``folder`` (created) and returns the folder."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{name}.yaml"), "w") as f:
        f.write(f"name: {name}\ndisplay_name: Tiny\nmcu: X\ncore: cortex-m0plus\nclock_mhz: 16\n"
                f"flash_kib: {flash_kib}\nram_kib: {ram_kib}\n"
                f"reserved: {{flash_kib: {reserved_flash_kib}, ram_kib: {reserved_ram_kib}}}\n"
                "sources: [a made-up board for a test]\n")
    return str(folder)


def make_artifact(cls, uri, **properties):
    """A TFX artifact of ``cls`` at ``uri`` with attribute-style properties (e.g. split_names)."""
    artifact = cls()
    artifact.uri = str(uri)
    for key, value in properties.items():
        setattr(artifact, key, value)
    return artifact


@contextlib.contextmanager
def reference_registry(workdir: str, user: str, password: str, **options):
    """The real docker-registry on loopback (see tests/support/reference_registry.py; ``options``
    go to its ``serve``); yields its URL.

    Where the server is not installed the test skips, or fails under CI / --require-tools
    (tests/support/tools.py); a server that is installed but does not start always fails.
    """
    from tests.support import reference_registry as server
    from tests.support import tools

    try:
        with server.serve(workdir, user, password, **options) as url:
            yield url
        return
    except server.RegistryUnavailable as err:
        problem = err  # reported below, outside the handler, so the message stands alone
    if isinstance(problem, server.RegistryNotInstalled):
        tools.tool_missing("docker-registry" if "docker-registry" in str(problem) else "htpasswd",
                           tools.DOCKER_REGISTRY)
    pytest.fail(f"docker-registry is installed but did not start: {problem} ({tools.DOCKER_REGISTRY}).",
                pytrace=False)


def non_loopback_address():
    """This machine's address on its outgoing interface (not loopback), or None without one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; the kernel picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def write_config_yaml(config: config_lib.PipelineConfig, path: str, **sections) -> str:
    """A YAML config file for the CLI that reproduces ``config``'s pipeline (same name, data,
    schema, requirements and training), so CLI verbs work on a run made by ``tiny_config``;
    ``sections`` adds or updates top-level fields (a dict updates a section, anything else replaces)."""
    import yaml

    with open(config_lib.DEFAULT_CONFIG) as f:
        raw = yaml.safe_load(f)
    raw["pipeline_name"] = config.pipeline_name
    raw["data"].update(words=list(config.data.words), root=config.data.root, schema=config.data.schema,
                       training_spans=config.data.training_spans, unknown_fraction=config.data.unknown_fraction,
                       silence_fraction=config.data.silence_fraction)
    raw["requirements"].update(dataclasses.asdict(config.requirements))
    raw["streaming"] = {k: list(v) if isinstance(v, tuple) else v
                        for k, v in dataclasses.asdict(config.streaming).items()}
    raw["training"].update(epochs=config.training.epochs, batch_size=config.training.batch_size,
                           width=config.training.width, hyperparameters=config.training.hyperparameters)
    for name, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(name, {}).update(value)
        else:
            raw[name] = value
    with open(path, "w") as f:
        yaml.safe_dump(raw, f)
    return path


# Node ids of the two built-in families' ExampleGens (their task families name them).
AUDIO_EXAMPLE_GEN = "AudioExampleGen"
MOTION_EXAMPLE_GEN = "MotionExampleGen"
