import io
import logging

from rich.console import Console

from pipeline.ui.progress import RunProgress


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("absl", logging.INFO, __file__, 1, message, None, None)


def test_plain_output_without_a_terminal():
    out = io.StringIO()
    progress = RunProgress(Console(file=out, force_terminal=False, width=100))
    handler = progress.handler()
    with progress:
        handler.emit(_record("Component AudioExampleGen is running."))
        for done in (20, 40, 50):
            handler.emit(_record(f"AudioExampleGen ingested {done}/50 clips"))
        handler.emit(_record("Component Trainer is running."))
        for epoch in range(1, 4):
            handler.emit(_record(f"Training epoch {epoch}/3: accuracy 0.9"))
        handler.emit(_record("Component Trainer is finished."))
        from components.model_search.tuner import TRIAL_MESSAGE

        for trial in (1, 2):  # what the ModelSearch logs, formatted as it formats it
            handler.emit(_record(TRIAL_MESSAGE % (trial, 2) + " starts: {'width': 16}"))
        handler.emit(_record("unrelated message"))
    text = out.getvalue()
    assert "ModelSearch trials: 2/2 (100%)" in text
    assert "▶ Trainer ..." in text and "✔ Trainer (" in text
    assert "Trainer epochs: 3/3 (100%)" in text and "unrelated" not in text
    assert "AudioExampleGen clips: 50/50 (100%)" in text


def test_live_bars_with_a_terminal():
    out = io.StringIO()
    progress = RunProgress(Console(file=out, force_terminal=True, width=100))
    handler = progress.handler()
    with progress:
        handler.emit(_record("Component Transform is running."))
        handler.emit(_record("Component Transform is finished."))
        progress.counted("generating clips", 50, 100)
        progress.counted("generating clips", 100, 100)
    text = out.getvalue()
    assert "Transform" in text and "generating clips" in text and "100/100" in text
