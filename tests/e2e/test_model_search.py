"""The hardware-aware model search on the tiny dataset: judged on the board first, trained with Hyperband,
the winner trained by the Trainer; and the repository-file path (Importer) when the search is off."""

import json
import os

import keras_tuner as kt
import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.model_search.executor import SEARCH_RESULTS_CSV, SEARCH_RESULTS_JSON
from pipeline import config as config_lib
from pipeline import pipeline as tinyml_pipeline
from pipeline.runners import local as run_local
from pipeline.tasks.common import search as search_lib
from pipeline.ui import report
from tests.helpers import tiny_config, write_config_yaml, write_tiny_board
from tests.unit.test_cli import invoke

# A board whose RAM holds the small candidates only: 24 KiB, 4 of them reserved for the firmware.
BOARD = {"name": "search_mcu", "flash_kib": 1024, "ram_kib": 24, "reserved_ram_kib": 4}
SEARCH = {"enabled": False, "max_epochs": 2, "factor": 2, "iterations": 1, "steps_per_epoch": 4,
          "time_budget_minutes": 10, "seed": 3}


@pytest.fixture(scope="module")
def searched(tiny_dataset, tmp_path_factory):
    """`tinyml-tfx search` on the tiny data; then a run with search on, and one with the file it wrote."""
    work = tmp_path_factory.mktemp("search")
    boards = write_tiny_board(work / "boards", **BOARD)
    base = tiny_config(str(work / "w"), tiny_dataset)
    sections = {"target_device": BOARD["name"], "extra_targets": [], "boards_dirs": [boards],
                "requirements": {"max_latency_ms": None}, "search": SEARCH}
    path = write_config_yaml(base, str(work / "search.yaml"), **sections)
    hyperparameters = str(work / "hyperparameters")
    result = invoke("search", "--config", path, "--workdir", base.workdir, "--output", hyperparameters)
    assert result.exit_code == 0, result.output
    with_search = config_lib.load_config(write_config_yaml(
        base, str(work / "on.yaml"), **{**sections, "search": {**SEARCH, "enabled": True}})).with_workdir(base.workdir)
    from_file = config_lib.load_config(write_config_yaml(
        base, str(work / "off.yaml"), **{**sections, "training": {"hyperparameters": hyperparameters}}
    )).with_workdir(base.workdir)
    return result, hyperparameters, with_search, run_local.run(with_search), from_file, run_local.run(from_file)


def _results(summary):
    with open(os.path.join(summary.search["uri"], SEARCH_RESULTS_JSON)) as f:
        return json.load(f)


def test_candidates_that_break_the_ram_budget_are_never_trained(searched):
    _, _, _, summary, _, _ = searched
    candidates = _results(summary)["candidates"]
    rejected = [c for c in candidates if c["status"] == "rejected"]
    trained = [c for c in candidates if c["status"] == "trained"]
    assert rejected and trained
    for candidate in rejected:
        assert candidate["epochs"] == 0 and candidate["val_accuracy"] is None and candidate["trial_id"] is None
        assert candidate["reason"] and candidate["cost_fits"] is False
    assert any("RAM: arena" in c["reason"] for c in rejected)  # the board's 20 KiB leave most shapes out
    assert all(c["cost_fits"] for c in trained)  # only what fits the board was trained
    shapes = {json.dumps({k: v for k, v in c["hyperparameters"].items() if not k.startswith("tuner/")},
                         sort_keys=True) for c in trained}
    assert not any(json.dumps({k: v for k, v in c["hyperparameters"].items() if not k.startswith("tuner/")},
                              sort_keys=True) in shapes for c in rejected)
    with open(os.path.join(summary.search["uri"], SEARCH_RESULTS_CSV)) as f:
        assert len(f.read().splitlines()) == len(candidates) + 1


def test_the_winner_meets_every_budget_and_is_what_the_trainer_trained(searched):
    _, _, config, summary, _, _ = searched
    winner = _results(summary)["summary"]["winner"]
    assert winner["cost_fits"] and winner["cost_ram_used"] <= BOARD["ram_kib"] * 1024
    assert summary.size_gate["blessed"], summary.size_gate  # the trained winner fits the board too
    assert _macs(summary) == winner["cost_macs"]  # the same architecture, layer for layer
    # Trained weights change TFLM's arena by a planner alignment at most (measured: 16 bytes).
    assert abs(summary.size_gate["arena_bytes"] - winner["cost_arena_bytes"]) <= 64
    store = _store(config)
    trainer = _execution(store, summary.run_id, tinyml_pipeline.TRAINER)
    search = _execution(store, summary.run_id, tinyml_pipeline.MODEL_SEARCH)
    consumed = _artifact_ids(store, trainer, metadata_store_pb2.Event.INPUT, "hyperparameters")
    produced = _artifact_ids(store, search, metadata_store_pb2.Event.OUTPUT, "best_hyperparameters")
    assert consumed and consumed == produced


def test_the_trials_are_in_ml_metadata(searched):
    _, _, config, summary, _, _ = searched
    store = _store(config)
    search = _execution(store, summary.run_id, tinyml_pipeline.MODEL_SEARCH)
    results = store.get_artifacts_by_id(_artifact_ids(store, search, metadata_store_pb2.Event.OUTPUT,
                                                      "tuner_results"))[0]
    counts = {k: results.custom_properties[k].int_value for k in ("candidates", "trials", "rejected_before_training")}
    table = _results(summary)["candidates"]
    assert counts == {"candidates": len(table), "trials": sum(c["status"] == "trained" for c in table),
                      "rejected_before_training": sum(c["status"] == "rejected" for c in table)}


def test_the_report_shows_the_front(searched, tmp_path):
    _, _, config, summary, _, _ = searched
    with open(report.write_report(summary, config, str(tmp_path))) as f:
        page = f.read()
    assert "id='search'" in page and "alt='model search front'" in page and "(winner)" in page
    assert "rejected by a budget" in page


def test_search_off_trains_the_repository_file_through_the_importer(searched):
    result, hyperparameters, _, _, config, summary = searched
    assert "Winner's hyperparameters" in result.output
    with open(os.path.join(hyperparameters, "best_hyperparameters.txt")) as f:
        hp = kt.HyperParameters.from_config(json.load(f))
    settings = tinyml_pipeline.model_settings(config)
    judge = search_lib.device_judge(settings["input_shape"], config.target_device, config.boards_dirs)
    expected = judge(search_lib.builder(config.family.search_module, settings)(hp))
    states = {c.node_id: c.state for c in summary.components}
    assert tinyml_pipeline.HYPERPARAMETERS_IMPORTER in states and tinyml_pipeline.MODEL_SEARCH not in states
    assert _macs(summary) == expected.macs  # the Trainer built the file's model


def _macs(summary) -> int:
    with open(summary.size_gate["report"].replace(".html", ".json")) as f:
        return json.load(f)["macs_total"]


def _store(config):
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    return metadata_store.MetadataStore(connection)


def _execution(store, run_id, node):
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    return next(e for e in store.get_executions_by_context(run.id) if run_local.node_id_of(store, e) == node)


def _artifact_ids(store, execution, event_type, key):
    return sorted(e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
                  if e.type == event_type and e.path.steps and e.path.steps[0].key == key)
