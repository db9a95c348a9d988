"""`tinyml-tfx run` and `report` on the tiny pipeline's workdir: the console a person sees."""

import os
import re

from tests.helpers import write_config_yaml
from tests.unit.test_cli import invoke


def test_run_prints_progress_and_the_summary_and_writes_the_report(tiny_pipeline_runs, tmp_path):
    config, (first, _, _) = tiny_pipeline_runs
    path = write_config_yaml(config, str(tmp_path / "tiny.yaml"))
    workdir = os.path.dirname(config.release.registry)

    result = invoke("run", "--config", path, "--workdir", workdir)
    assert result.exit_code == 0, result.output
    assert "Running pipeline 'kws-tiny'" in result.output
    assert re.search(r"Trainer\s+cached", result.output)  # the same pipeline: answered from TFX's cache
    assert "OTA release:" in result.output and "Eval accuracy:" in result.output
    report = re.search(r"Report:\s+(\S+)", result.output).group(1)
    with open(report) as f:
        page = f.read()
    with open(os.path.join(os.path.dirname(report), "model_card.md")) as f:
        card = f.read()
    summary = re.search(r"Pipeline 'kws-tiny', run (\S+):", result.output).group(1)
    assert f"Run {summary}" in page and f"- run: {summary}" in card  # this run's report and card, not an old one

    again = invoke("report", "--config", path, "--workdir", workdir, "--run", first.run_id)
    assert again.exit_code == 0 and first.run_id.replace(":", "-") in again.output
