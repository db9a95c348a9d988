"""Helpers for tests: a tiny dataset spec and configs that point at it."""

from __future__ import annotations

import dataclasses
import os

from pipeline import config as config_lib
from pipeline.tasks.kws import generate

TINY_WORDS = ("yes", "no", "up")
TINY_UNKNOWN_WORDS = ("cat", "dog")


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


def tiny_config(workdir: str, data_root: str) -> config_lib.PipelineConfig:
    """The default config scaled down to the tiny dataset, with run directories under ``workdir``."""
    base = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    os.makedirs(workdir, exist_ok=True)
    data = dataclasses.replace(base.data, words=TINY_WORDS, root=data_root)
    data = dataclasses.replace(data, schema=write_schema_for(data.labels, os.path.join(workdir, "schema.pbtxt")))
    return dataclasses.replace(
        base,
        pipeline_name="kws-tiny",
        data=data,
        requirements=config_lib.Requirements(min_accuracy=0.3, max_regression=0.5),
        training=dataclasses.replace(base.training, epochs=20, batch_size=16, width=32),
    ).with_workdir(workdir)
