"""The report's model-search section: the front it tabulates compares trials of one fidelity, so the
winner (chosen among the longest-trained, components/model_search/tuner.py) is always on it."""

import json
import types

from components.model_search.executor import SEARCH_RESULTS_JSON
from pipeline.ui import report


def _candidate(name, epochs, accuracy, latency_ms, status="trained"):
    return {"candidate": name, "status": status, "val_accuracy": accuracy, "cost_latency_ms": latency_ms,
            "cost_arena_bytes": 16_000, "cost_flash_used": 40_960, "cost_macs": 1_000_000,
            "hyperparameters": {"width": 16, "tuner/epochs": epochs}}


def _section(tmp_path, candidates, winner):
    results = {"candidates": candidates, "summary": {"winner": winner, "candidates": len(candidates)}}
    (tmp_path / SEARCH_RESULTS_JSON).write_text(json.dumps(results))
    summary = types.SimpleNamespace(search={"uri": str(tmp_path)})
    config = types.SimpleNamespace(requirements=types.SimpleNamespace(max_latency_ms=200.0))
    return report._search_section(summary, config)


def test_a_lucky_short_trial_does_not_hide_the_winner_from_the_front(tmp_path):
    lucky = _candidate("c1", epochs=1, accuracy=0.40, latency_ms=50.0)   # beats the winner on both axes
    winner = _candidate("c2", epochs=2, accuracy=0.30, latency_ms=80.0)
    slower = _candidate("c3", epochs=2, accuracy=0.28, latency_ms=120.0)
    section = _section(tmp_path, [lucky, winner, slower, _candidate("c4", 0, None, 900.0, "rejected")], winner)
    names = [row[0] for row in section["front"]]
    assert names == ["c2"]   # c3 is dominated by the winner; c1 is not comparable (1 epoch)
    assert section["front"][0][-1].endswith("(winner)")
    assert section["front_epochs"] == 2 and section["shorter_trials"] == 1 and section["rejected"] == 1


def test_the_front_is_fastest_first_and_keeps_each_trade_off():
    trained = [_candidate("a", 2, 0.9, 300.0), _candidate("b", 2, 0.8, 100.0), _candidate("c", 2, 0.7, 150.0),
               _candidate("d", 1, 0.99, 10.0)]
    assert [r["candidate"] for r in report.pareto_front(report.longest_trained(trained))] == ["b", "a"]
    assert report.longest_trained([]) == []
