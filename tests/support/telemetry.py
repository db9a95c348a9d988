"""Telemetry for tests: device summaries accumulated by the real summary code from generated int8 data.

Each device has its own per-channel level (devices differ) around the fleet's profile; ``shift``
adds a level change to the upper channels (a new noise with energy high in the band), as the
fleet simulator's noise shift does to the real front end. Deterministic from ``seed``.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from components.telemetry.summary import SummaryAccumulator


def device_records(labels: Sequence[str], channels: Sequence[str], devices: int, period: int, seed: int,
                   shift: float = 0.0, frames: int = 400, windows: int = 60, device_class: str = "nano33ble_sense",
                   model_version: str = "0.1.0", silence_share: float = 0.7, score_range=(40, 128),
                   max_detections: int = 3, confirmed_share: Optional[float] = 1.0) -> List[Dict]:
    """One summary record per device for ``period``; the first ``confirmed_share`` of each device's detections
    are confirmed (None: the devices report no confirmations)."""
    rng = np.random.default_rng([seed, period])
    profile = np.linspace(-60, 20, len(channels))
    shifted = np.arange(len(channels)) >= len(channels) // 2
    out = []
    for d in range(devices):
        device_rng = np.random.default_rng([seed, 1000 + d])      # a device's own level, the same every period
        level = profile + device_rng.normal(0, 3, len(channels)) + shift * shifted
        acc = SummaryAccumulator(len(channels), len(labels), reports_confirmations=confirmed_share is not None)
        acc.add_frames(np.clip(np.round(rng.normal(level, 12, (frames, len(channels)))), -128, 127))
        scores = np.full((windows, len(labels)), -128, np.int64)
        top = np.where(rng.random(windows) < silence_share, 0, rng.integers(1, len(labels), windows))
        scores[np.arange(windows), top] = rng.integers(score_range[0], score_range[1], windows)
        acc.add_windows(np.clip(scores, -128, 127))
        detected = top[top >= 2][:max_detections]
        for k in detected:
            acc.add_detection(int(k))
        for k in detected[:int(round((confirmed_share or 0.0) * len(detected)))]:
            acc.add_confirmation(int(k))
        out.append(acc.record(labels, channels, device_id=f"dev-{d:04d}", device_class=device_class,
                              model_version=model_version, period=period,
                              period_start=f"2026-12-{1 + period:02d}T00:00:00Z", period_seconds=86400))
    return out


def write_batch(folder: str, records: List[Dict], name: str = "telemetry.jsonl") -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return folder


def ingest_batch(folder: str, records: List[Dict], workdir: str, *flags: str) -> str:
    """Writes ``records`` as a batch in ``folder`` and ingests it with ``tinyml-tfx telemetry ingest``
    into ``workdir`` (``flags``: e.g. ``--reference``); asserts it succeeded and returns its output."""
    from click.testing import CliRunner

    from pipeline.ui.cli import main

    out = CliRunner().invoke(main, ["telemetry", "ingest", write_batch(folder, records), "--workdir", workdir, *flags])
    assert out.exit_code == 0, out.output
    return out.output
