"""pipeline/bench/scale.py and measured.py: the parts of the scale benchmark that decide and judge."""

import argparse
import dataclasses
import json
import os

import pytest

from pipeline import config as config_lib
from pipeline.bench import measured, scale
from pipeline.tasks.kws import generate
from tests.helpers import tiny_spec


def _settings(tmp_path, factor, **kwargs):
    return measured.ScaleSettings(factor=factor, workdir=str(tmp_path / f"x{factor}"), **kwargs)


def test_a_scaled_config_multiplies_the_speakers_and_keeps_everything_else(tmp_path):
    base = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    ten = measured.scaled_config(base, _settings(tmp_path, 10, epochs=1, beam_args=["--direct_num_workers=2"]))
    assert ten.data.synthetic.speakers == 10 * base.data.synthetic.speakers
    assert ten.training.epochs == 1 and ten.training.batch_size == base.training.batch_size
    assert ten.beam_args == ("--direct_num_workers=2",)
    assert ten.data_root == str(tmp_path / "x10" / "data" / base.pipeline_name)
    assert ten.data.words == base.data.words and ten.data.seed == base.data.seed
    spec = base.family.generation_spec(ten)
    assert spec.speakers == 960 and spec.fingerprint() != base.family.generation_spec(base).fingerprint()
    same = measured.scaled_config(base, _settings(tmp_path, 1))
    assert same.training == base.training and same.beam_args == base.beam_args


def test_a_scaled_config_can_point_at_an_existing_dataset(tmp_path):
    base = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    config = measured.scaled_config(base, _settings(tmp_path, 10, data_root="/data/kws-10x"))
    assert config.data_root == "/data/kws-10x" and not config.uses_synthetic_data


def test_a_config_with_its_own_dataset_cannot_be_scaled(tmp_path):
    base = config_lib.load_config(config_lib.DEFAULT_CONFIG)
    own = dataclasses.replace(base, data=dataclasses.replace(base.data, root="/data/speech_commands"))
    with pytest.raises(config_lib.ConfigError, match="data.root is set"):
        measured.scaled_config(own, _settings(tmp_path, 10))


def test_a_family_whose_data_does_not_grow_with_speakers_is_refused(tmp_path):
    motion = config_lib.load_config(os.path.join(os.path.dirname(config_lib.DEFAULT_CONFIG), "motion.yaml"))
    with pytest.raises(config_lib.ConfigError, match="does not grow with data.synthetic.speakers"):
        measured.scaled_config(motion, _settings(tmp_path, 10))


def test_an_unknown_step_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Unknown step 'train'"):
        measured.measure("train", config_lib.DEFAULT_CONFIG, _settings(tmp_path, 1), str(tmp_path))


def test_beam_modes_parse_and_refuse_nonsense():
    assert scale.beam_modes("in_memory:1, multi_processing:2") == [("in_memory", 1), ("multi_processing", 2)]
    assert scale.beam_args_for("multi_processing", 2) == ["--direct_running_mode=multi_processing",
                                                           "--direct_num_workers=2"]
    for text in ("in_memory", "fast:2", "multi_threading:0", "multi_threading:two"):
        with pytest.raises(argparse.ArgumentTypeError, match="MODE:WORKERS"):
            scale.beam_modes(text)


def test_the_command_line_refuses_a_comparison_scale_it_does_not_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        scale.parse_args(["--workdir", str(tmp_path), "--scales", "1,2", "--compare-at", "10"])
    assert exit_info.value.code == 2
    assert "--compare-at 10 is not one of the --scales" in capsys.readouterr().err
    args = scale.parse_args(["--workdir", str(tmp_path), "--scales", "2,1"])
    assert args.scales == [1, 2] and args.compare_at == 2
    assert scale.parse_args(["--workdir", str(tmp_path)]).compare_at == 10


def test_a_dataset_is_compared_clip_by_clip(tmp_path):
    small, large = str(tmp_path / "small"), str(tmp_path / "large")
    generate.generate_dataset(tiny_spec(), small, processes=1)
    generate.generate_dataset(dataclasses.replace(tiny_spec(), speakers=12), large, processes=2)
    counts = scale.compare_clips(small, large)
    assert counts == {"identical": 10 * 5 * 3 + 5, "different": 0, "missing": 0}   # clips and 5 noise files
    with open(os.path.join(large, "yes", sorted(os.listdir(os.path.join(small, "yes")))[0]), "r+b") as f:
        f.seek(100)
        f.write(b"\x01\x02")
    os.remove(os.path.join(large, "no", sorted(os.listdir(os.path.join(small, "no")))[0]))
    counts = scale.compare_clips(small, large)
    assert counts["different"] + counts["missing"] == 2 and counts["identical"] == 153


def test_the_outputs_verdict_names_what_differs():
    exact = {"examples": True, "transformed_examples": True, "transform_graph": True,
             "statistics": True, "statistics_rounded": True}
    assert scale.outputs_verdict(exact).startswith("identical (")
    assert "statistics equal to 10 significant digits" in scale.outputs_verdict({**exact, "statistics": False})
    assert scale.outputs_verdict({**exact, "transform_graph": False}).startswith("DIFFERENT: transform_graph;")
    assert scale.outputs_verdict({**exact, "statistics": False, "statistics_rounded": False}).startswith(
        "DIFFERENT: statistics;")
    sketches_only = scale.outputs_verdict({**exact, "statistics": False, "statistics_rounded": False,
                                           "statistics_exact": True})
    assert sketches_only.startswith("identical examples") and "sketch estimates" in sketches_only
    assert scale.outputs_verdict({**exact, "statistics": False, "statistics_rounded": False,
                                  "statistics_exact": False}).startswith("DIFFERENT: statistics;")
    assert scale.outputs_verdict({}) == "not compared"
    assert scale.outputs_verdict(exact).endswith("read order not compared")
    same_order = {**exact, "examples_read_order": True, "transformed_examples_read_order": True}
    assert "the same files with the records in the same order" in scale.outputs_verdict(same_order)
    reordered = scale.outputs_verdict({**same_order, "transformed_examples_read_order": False})
    assert reordered.startswith("identical (") and "read order DIFFERENT for the transformed examples (" in reordered


def test_a_mode_given_twice_is_compared_with_the_baseline_and_with_its_own_first_run():
    def run(mode, examples, order):
        return {"mode": mode, "digests": {"examples": examples, "examples_read_order": order}}

    runs = [run("in_memory:1", "e", "o1"), run("multi_threading:2", "e", "o2"),
            run("multi_threading:2 (run 2)", "e", "o3"), run("in_memory:1 (run 2)", "e", "o1")]
    scale.compare_outputs(runs)
    assert "same_outputs_as_in_memory:1" not in runs[0]
    assert runs[1] == {**run("multi_threading:2", "e", "o2"),
                       "same_outputs_as_in_memory:1": {"examples": True, "examples_read_order": False}}
    assert runs[2]["same_outputs_as_multi_threading:2"] == {"examples": True, "examples_read_order": False}
    assert runs[2]["same_outputs_as_in_memory:1"] == {"examples": True, "examples_read_order": False}
    assert set(k for k in runs[3] if k.startswith("same_")) == {"same_outputs_as_in_memory:1"}
    assert runs[3]["same_outputs_as_in_memory:1"] == {"examples": True, "examples_read_order": True}


def test_the_guard_speaks_when_disk_or_memory_runs_low(tmp_path):
    assert scale.make_guard(str(tmp_path), 0, 0)() is None
    disk = scale.make_guard(str(tmp_path / "not" / "yet"), 10 ** 18, 0)()
    assert "free disk fell to" in disk and "--min-free-gb" in disk
    memory = scale.make_guard(str(tmp_path), 0, 10 ** 18)()
    assert "available memory fell to" in memory


def test_folder_bytes_counts_every_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"1234")
    (tmp_path / "y").write_bytes(b"56")
    assert scale.folder_bytes(str(tmp_path)) == 6
    assert scale.folder_bytes(str(tmp_path / "missing")) == 0


def _figures(seconds, rss_mib, cores=1.5, others=0.1, written_mib=10.0):
    return {"state": "done", "seconds": seconds, "peak_rss_bytes": int(rss_mib * 2 ** 20), "cpu_cores": cores,
            "other_cores": others, "bytes_written": int(written_mib * 2 ** 20)}


def _results(tmp_path):
    scales = []
    for factor, examples in ((1, 4608), (10, 46080)):
        scales.append({
            "factor": factor, "speakers": 96 * factor, "speakers_distinct": 96 * factor, "clips": 7680 * factor,
            "examples": examples, "generation": _figures(12.0 * factor, 900),
            "components": {"AudioExampleGen": _figures(8.0 * factor, 1200 * (1 + factor / 4)),
                           "StatisticsGen": _figures(6.0 * factor ** 1.3, 1300),
                           "ImportSchemaGen": _figures(0.05, 1300),
                           "Trainer": _figures(40.0 + factor, 1500, cores=1.8)},
            "trainer_fit": {"seconds": 10.0 * factor, "cpu_seconds": 13.0 * factor, "cores": 1.3, "steps": 200}})
    runs = [{"mode": "in_memory:1", "components": {"StatisticsGen": _figures(60.0, 1300, others=0.9)},
             "digests": {}},
            {"mode": "multi_processing:2", "components": {"StatisticsGen": _figures(30.0, 2100)},
             "same_outputs_as_in_memory:1": {"examples": True, "transformed_examples": True,
                                             "transform_graph": True, "statistics": False,
                                             "statistics_rounded": True}}]
    return {"machine": {"cpus": 2, "memory_gib": 23.5, "python": "3.13"},
            "settings": {"config": config_lib.DEFAULT_CONFIG, "scales": [1, 10, 100], "train_steps": 200,
                         "epochs": 1, "beam_args": ["--direct_running_mode=in_memory"], "compare_at": 10},
            "scales": scales, "skipped": [{"factor": 100, "reason": "needs about 60.0 GiB"}], "growth": {},
            "runners": {"factor": 10, "runs": runs},
            "determinism": [{"reference": "1x", "scale": "10x", "identical": 7685, "different": 0, "missing": 0}]}


def test_the_report_fits_growth_judges_the_targets_and_flags_a_busy_machine(tmp_path, capsys):
    args = scale.parse_args(["--report", str(tmp_path / "scale.json")])
    args.workdir = str(tmp_path)
    benchmark = scale.ScaleBenchmark(args)
    benchmark.results = _results(tmp_path)
    benchmark.save()
    assert scale.main(["--report", str(tmp_path / "scale.json")]) == 0
    report = capsys.readouterr().out
    assert "100x not run: needs about 60.0 GiB." in report
    assert "| AudioExampleGen | 8.0 s / 1,500 / 1.50 / 10 (others 0.10)" in report
    assert "StatisticsGen: time exponent 1.30 (ABOVE the target: target <= 1.1)" in report
    assert "AudioExampleGen: time exponent 1.00 (ok: target <= 1.1)" in report
    assert "AudioExampleGen: peak memory 2.80x the smallest scale's (ABOVE the target: target <= 2.0x)" in report
    assert "ImportSchemaGen: time exponent" not in report   # too fast to fit a growth on
    assert "Trainer: peak memory 1.00x the smallest scale's; CPU cores busy 1.80, 1.80 of" in report
    assert "model.fit alone (no start-up or export): 1x 200 steps in 10.0 s, 1.30 cores busy, 10x 200 steps in " \
           "100.0 s, 1.30 cores busy of" in report
    assert "| StatisticsGen | 60.0 (1.50 cores; others 0.90) | 30.0 (1.50 cores; others 0.10) | " \
           "2.00x (multi_processing:2) |" in report
    # one worker kept 1.5 of the 2 CPUs busy: two workers could make it at most 2 / 1.5 times faster
    assert "ceiling for 2 workers on 2 CPUs, from in_memory:1's cores busy" in report
    assert "StatisticsGen 1.33x; all 1.33x" in report
    assert "statistics equal to 10 significant digits" in report
    assert "7,685 clips of the 1x dataset are byte-identical in the 10x dataset" in report
    assert "kept up to 0.9 of the" in report and "StatisticsGen with in_memory:1" in report
    assert "evicted from the page cache" not in report

    benchmark.results["settings"]["cold"] = True   # --cold: each scale read from the disk
    for scale_result, resident in zip(benchmark.results["scales"], (0.0, 0.004)):
        scale_result["data_cached_at_start"] = resident
    benchmark.save()
    assert scale.main(["--report", str(tmp_path / "scale.json")]) == 0
    assert "evicted from the page cache before its pipeline (resident then: 1x 0.0%, 10x 0.4%)" in \
        capsys.readouterr().out


def test_the_trainer_fit_figures_come_from_the_trainers_history(tmp_path):
    import types

    from pipeline.tasks.common import training

    run_dir = tmp_path / "model_run"
    run_dir.mkdir()
    (run_dir / training.HISTORY_FILE).write_text(json.dumps(
        {"loss": [1.0], training.OPTIMIZER_STEPS: 200, training.FIT_SECONDS: 8.0, training.FIT_CPU_SECONDS: 12.0}))
    summary = types.SimpleNamespace(artifact_uris={"Trainer": {"model_run": str(run_dir)}})
    assert measured.trainer_fit(summary) == {"seconds": 8.0, "cpu_seconds": 12.0, "cores": 1.5, "steps": 200}
    assert measured.trainer_fit(types.SimpleNamespace(artifact_uris={})) is None   # the data stages only


def test_the_cold_reads_bench_evicts_a_dataset_from_the_page_cache(tmp_path):
    from pipeline.bench import cold_reads

    data = tmp_path / "data" / "yes"
    data.mkdir(parents=True)
    for i in range(3):
        (data / f"s{i}_nohash_0.wav").write_bytes(os.urandom(256 * 1024))
    (data / "empty.wav").write_bytes(b"")
    for path in data.iterdir():
        path.read_bytes()
    assert cold_reads.cached_fraction(str(tmp_path / "data")) > 0.9
    assert cold_reads.evict_from_page_cache(str(tmp_path / "data")) == 4
    assert cold_reads.cached_fraction(str(tmp_path / "data")) < 0.1
    (data / "s1_nohash_0.wav").read_bytes()
    assert 0.2 < cold_reads.cached_fraction(str(tmp_path / "data")) < 0.5  # one file of three, and read-ahead
    assert cold_reads.cached_fraction(str(tmp_path / "nothing")) is None


def test_a_stopped_scale_keeps_the_components_that_had_finished(tmp_path, capsys):
    from pipeline.bench import proctree

    samples = [proctree.Sample(time=100.0 + t, rss_bytes=(1000 + 10 * t) * 2 ** 20, cpu_seconds=1.5 * t, processes=1,
                               machine_cpu_seconds=1.6 * t) for t in range(0, 31)]
    windows = {"AudioExampleGen": {"state": "done", "start": 101.0, "end": 111.0},
               "ImportSchemaGen": {"state": "cached", "start": 111.0, "end": 111.1},
               "StatisticsGen": {"state": "done", "start": 111.5, "end": 120.0},
               "Transform": {"state": "running", "start": 120.5, "end": 130.0}}

    finished = scale.ended_component_figures(windows, samples)

    assert list(finished) == ["AudioExampleGen", "StatisticsGen"]     # neither the cached nor the unfinished one
    assert finished["AudioExampleGen"]["seconds"] == 10.0
    assert finished["AudioExampleGen"]["peak_rss_bytes"] == 1110 * 2 ** 20
    assert finished["AudioExampleGen"]["cpu_cores"] == pytest.approx(1.5)
    assert finished["StatisticsGen"]["peak_rss_bytes"] == 1200 * 2 ** 20
    assert scale.ended_component_figures(windows, []) == {}

    args = scale.parse_args(["--report", str(tmp_path / "scale.json")])
    args.workdir = str(tmp_path)
    benchmark = scale.ScaleBenchmark(args)
    benchmark.results = _results(tmp_path)
    benchmark.results["scales"].append({"factor": 100, "speakers": 9600, "stopped": "free disk space below 10 GB",
                                        "finished_components": finished})
    benchmark.results["skipped"] = []
    benchmark.save()
    assert scale.main(["--report", str(tmp_path / "scale.json")]) == 0
    report = capsys.readouterr().out
    assert "100x stopped: free disk space below 10 GB." in report
    assert "finished before it (wall s / peak MiB / cores): AudioExampleGen 10.0 / 1,110 / 1.50, StatisticsGen " \
           "8.5 / 1,200 / 1.50" in report
    assert "| AudioExampleGen | 8.0 s / 1,500" in report      # the finished scales' table is as before


def test_component_windows_of_a_run_the_store_does_not_have_are_empty(tmp_path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = config_lib.load_config(config_lib.DEFAULT_CONFIG).with_workdir(str(tmp_path / "work"))
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    metadata_store.MetadataStore(connection)   # an empty store, as a run stopped before its first component leaves

    assert measured.component_windows(config, "no-such-run") == {}


def test_the_speedup_ceiling_weighs_each_component_by_its_time():
    one_worker = {"AudioExampleGen": {"seconds": 20.0, "cpu_cores": 1.0},
                  "Transform": {"seconds": 60.0, "cpu_cores": 1.6}}
    ceiling = scale.speedup_ceiling(one_worker, workers=2, cpus=2)
    assert ceiling["AudioExampleGen"] == pytest.approx(2.0)
    assert ceiling["Transform"] == pytest.approx(1.25)
    assert ceiling[scale.ALL_COMPONENTS] == pytest.approx(80.0 / (20.0 / 2.0 + 60.0 / 1.25))
    # more CPUs than the workers can use: the workers are the limit
    assert scale.speedup_ceiling(one_worker, workers=2, cpus=8)["Transform"] == pytest.approx(2.0)
    # a component too short to sample gains nothing in the total, and is not listed
    with_short = dict(one_worker, ImportSchemaGen={"seconds": 4.0, "cpu_cores": None})
    ceiling = scale.speedup_ceiling(with_short, workers=2, cpus=2)
    assert "ImportSchemaGen" not in ceiling
    assert ceiling[scale.ALL_COMPONENTS] == pytest.approx(84.0 / (20.0 / 2.0 + 60.0 / 1.25 + 4.0))
    assert scale.speedup_ceiling({"Transform": {"seconds": 60.0, "cpu_cores": None}}, 2, 2) is None


def test_a_step_that_ended_badly_says_how():
    def ended(code):
        return measured.Measured({}, [], None, code, "/w/steps/pipeline.log", 0.0, 1.0)

    assert scale.how_it_ended(ended(-9)) == "was killed by SIGKILL (log: /w/steps/pipeline.log)"
    assert scale.how_it_ended(ended(1)) == "failed with exit status 1 (log: /w/steps/pipeline.log)"


def test_the_beam_split_bench_does_the_same_work_on_every_source(tmp_path):
    from pipeline.bench import beam_split

    path = str(tmp_path / "records.tfrecord")
    beam_split.write_records(path, 2500)
    for source in beam_split.SOURCES:
        result = beam_split.run_once(path, 2500, source, "in_memory", 1, rounds=2)
        assert result["records"] == 2500 and result["seconds"] > 0 and result["cores"] > 0
        assert result["processes"] == 1
    # the one source whose work the DirectRunner spreads over its worker processes: each record once, in both
    spread = beam_split.run_once(path, 2500, "reshuffled", "multi_processing", 2, rounds=2)
    assert spread["records"] == 2500 and spread["processes"] == 2
    with pytest.raises(ValueError, match="unknown source"):
        beam_split.run_once(path, 2500, "gcs", "in_memory", 1, rounds=2)
