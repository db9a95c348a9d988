"""A deterministic, clearly SYNTHETIC motion dataset: simulated gestures from a 6-axis IMU.

Each subject performs each gesture a few times; a recording is a CSV file as a data
logger writes it (``timestamp,ax,ay,az,gx,gy,gz``: seconds, g, degrees per second) in the
layout MotionExampleGen reads (one folder per label, split lists by subject). Gestures:

- ``idle``: the device rests; gravity and sensor noise only;
- ``wave``: side-to-side swings around 1.5 Hz;
- ``circle``: the hand draws circles around 1 Hz (x and y in quadrature);
- ``shake``: fast vertical shaking around 5 Hz.

Per recording: amplitude, tempo, the device's orientation (gravity's direction), sensor
biases, noise and the logger's timestamp jitter vary, and the gesture fills only part of
the recording (the subject starts late or stops early, as in real logs), so some
windows of a gesture recording hold little of it: labels are as noisy as real ones.
Equal specs give byte-identical datasets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from components.ingestion import SPLIT_LISTS
from pipeline.tasks.common import datasets
from pipeline.tasks.common.datasets import (assign_speaker_splits, publish_dataset, staging_dir,
                                            write_split_lists)

GESTURES = ("idle", "wave", "circle", "shake")
CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
_BASE_FREQUENCY_HZ = {"idle": 0.0, "wave": 1.5, "circle": 1.0, "shake": 5.0}


@dataclasses.dataclass(frozen=True)
class MotionSpec:
    """What to generate; equal specs give byte-identical datasets."""

    labels: Tuple[str, ...] = GESTURES
    subjects: int = 20
    repetitions: int = 3
    seconds: float = 6.0
    sample_rate: float = 100.0
    seed: int = 7

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """A random rotation: how the device sits in the hand."""
    angles = np.radians(rng.uniform(-max_degrees, max_degrees, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def simulate(gesture: str, spec: MotionSpec, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One recording: timestamps (s) and samples ``[n, 6]`` (ax, ay, az in g; gx, gy, gz in dps)."""
    n = int(spec.seconds * spec.sample_rate)
    jitter = rng.normal(0.0, 0.03 / spec.sample_rate, n)  # the logger's clock is not perfect
    t = np.arange(n) / spec.sample_rate + np.clip(jitter, -0.3 / spec.sample_rate, 0.3 / spec.sample_rate)
    t[0] = 0.0
    frequency = _BASE_FREQUENCY_HZ[gesture] * rng.uniform(0.8, 1.25)
    amplitude = rng.uniform(0.7, 1.3)
    phase = rng.uniform(0, 2 * np.pi)
    w = 2 * np.pi * frequency
    acc = np.zeros((n, 3))
    gyro = np.zeros((n, 3))
    if gesture == "wave":
        acc[:, 0] = 0.8 * amplitude * np.sin(w * t + phase)
        gyro[:, 2] = 120 * amplitude * np.cos(w * t + phase)
    elif gesture == "circle":
        acc[:, 0] = 0.5 * amplitude * np.sin(w * t + phase)
        acc[:, 1] = 0.5 * amplitude * np.cos(w * t + phase)
        gyro[:, 0] = 60 * amplitude * np.cos(w * t + phase)
        gyro[:, 1] = -60 * amplitude * np.sin(w * t + phase)
    elif gesture == "shake":
        acc[:, 2] = 1.5 * amplitude * np.sin(w * t + phase)
        gyro[:, 0] = 200 * amplitude * np.sin(w * t + phase + 0.5) * rng.uniform(0.5, 1.0)
    elif gesture != "idle":
        raise ValueError(f"No simulation for gesture '{gesture}'; known: {', '.join(GESTURES)}.")
    # The gesture fills 60-100 % of the recording; outside it the hand rests (with a slow drift).
    active = np.zeros(n)
    span = int(n * rng.uniform(0.6, 1.0))
    start = int(rng.integers(0, n - span + 1))
    ramp = min(span // 2, int(0.3 * spec.sample_rate))
    active[start:start + span] = 1.0
    active[start:start + ramp] = np.linspace(0.0, 1.0, ramp)
    active[start + span - ramp:start + span] = np.linspace(1.0, 0.0, ramp)
    acc *= active[:, None]
    gyro *= active[:, None]
    drift = 0.05 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 2 * np.pi))
    acc[:, :2] += drift[:, None]
    rotation = _rotation(rng, 25.0)
    gravity = rotation @ np.array([0.0, 0.0, 1.0])
    acc = (acc @ rotation.T) + gravity + rng.normal(0, 0.02, 3) + rng.normal(0, 0.03, (n, 3))
    gyro = (gyro @ rotation.T) + rng.normal(0, 1.5, 3) + rng.normal(0, 2.0, (n, 3))
    return t, np.concatenate([acc, gyro], axis=1)


def _csv(t: np.ndarray, samples: np.ndarray) -> str:
    lines = ["timestamp," + ",".join(CHANNELS)]
    lines += [f"{ti:.4f}," + ",".join(f"{v:.4f}" for v in row) for ti, row in zip(t, samples)]
    return "\n".join(lines) + "\n"


def generate_dataset(spec: MotionSpec, out_dir: str,
                     progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, object]:
    """Writes the dataset to ``out_dir`` (replaced atomically) and returns its manifest."""
    with staging_dir(out_dir) as staging:
        subjects = [hashlib.sha1(f"{spec.seed}:{i}".encode()).hexdigest()[:8] for i in range(spec.subjects)]
        splits = assign_speaker_splits(subjects)
        lists: Dict[str, List[str]] = {split: [] for split in SPLIT_LISTS}
        total, done = len(subjects) * len(spec.labels) * spec.repetitions, 0
        for label in spec.labels:
            os.makedirs(os.path.join(staging, label))
            for subject in subjects:
                for repetition in range(spec.repetitions):
                    seed = int(hashlib.sha1(f"{spec.seed}:{label}:{subject}:{repetition}".encode()).hexdigest()[:8], 16)
                    t, samples = simulate(label, spec, np.random.default_rng(seed))
                    relative = f"{label}/{subject}_nohash_{repetition}.csv"
                    with open(os.path.join(staging, relative), "w") as f:
                        f.write(_csv(t, samples))
                    if splits[subject] in lists:
                        lists[splits[subject]].append(relative)
                    done += 1
                    if progress:
                        progress(done, total)
        write_split_lists(staging, lists)
        manifest = {
            "synthetic": True,
            "description": ("SYNTHETIC motion data: simulated 6-axis IMU gestures (idle, wave, circle, shake) "
                            "with per-recording variation and sensor noise. Not recorded from people; a model "
                            "trained on it is a pipeline demonstration, not a product."),
            "fingerprint": spec.fingerprint(),
            "spec": dataclasses.asdict(spec),
            "subjects": {s: splits[s] for s in subjects},
            "recordings": total,
        }
        return publish_dataset(staging, out_dir, manifest)


def ensure_dataset(spec, out_dir: str, **kwargs) -> bool:
    """Generates the dataset unless ``out_dir`` already holds this very one; True when it generated."""
    return datasets.ensure_dataset(spec, out_dir, generate_dataset, **kwargs)
