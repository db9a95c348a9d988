"""The run report and model card of the tiny end-to-end run: every section, with that run's numbers."""

import os
import re

import pytest

from pipeline.ui import report


@pytest.fixture(scope="module")
def written(tiny_pipeline_runs, tmp_path_factory):
    config, (first, _, _) = tiny_pipeline_runs
    out = str(tmp_path_factory.mktemp("report"))
    path = report.write_report(first, config, out)
    with open(path) as f:
        page = f.read()
    with open(os.path.join(out, report.MODEL_CARD_FILE)) as f:
        card = f.read()
    return first, page, card


def test_every_section_is_there_with_this_runs_numbers(written):
    summary, page, _ = written
    for anchor in ("id='data'", "id='model'", "id='device'", "id='release'", "id='comparison'"):
        assert anchor in page
    assert f"{summary.eval_accuracy:.4f}" in page
    q = summary.quantization
    assert f"{q['model_bytes']:,} bytes" in page
    assert f"tensor arena {summary.size_gate['arena_bytes']:,} bytes" in page  # the gate's measurement, reused
    assert "yes/deadbeef_nohash_0.wav" in page  # the planted bad WAV, with its reason
    assert "Synthetic data." in page
    assert "<b>Test split</b> (held out" in page and f"{summary.test['quantized_accuracy']:.4f}" in page
    for alt in ("examples per split and class", "feature maps", "training curves", "confusion matrix float",
                "confusion matrix int8", "budgets per board"):
        assert f"alt='{alt}'" in page, alt


def test_page_is_self_contained(written):
    _, page, _ = written
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)
    images = re.findall(r"src='(data:image/png;base64,[^']+)'", page)
    assert len(images) >= 6 and all(len(i) > 1000 for i in images)


def test_model_card_states_use_data_metrics_and_limits(written):
    summary, _, card = written
    for heading in ("## Intended use", "## Data", "## Metrics", "## Device constraints", "## Limitations"):
        assert heading in card
    assert "synthetic" in card.lower() and f"{summary.eval_accuracy:.4f}" in card
    assert "## Metrics (test split: held out" in card and f"{summary.test['float_accuracy']:.4f}" in card
    assert "| nano33ble_sense | yes |" in card and f"{summary.size_gate['arena_bytes']:,} bytes" in card


def test_release_section_says_what_was_pushed(written):
    summary, page, _ = written
    release = page[page.index("id='release'"):page.index("id='comparison'")]
    assert "Pushed" in release and summary.release["pushed_version"] in release
    assert summary.release["digest"] in release and "nano33ble_sense-canary" in release
    assert "<td>signed</td><td>yes</td>" in release


def test_precision_and_recall_from_a_confusion_matrix():
    from components.ota import model_card

    rows = model_card.precision_recall([[3, 1], [0, 4]], ["a", "b"])
    assert rows[0] == {"label": "a", "precision": 1.0, "recall": 0.75, "support": 4}
    assert rows[1]["precision"] == 0.8 and rows[1]["recall"] == 1.0
