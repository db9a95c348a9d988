"""The report rendered by a real headless Chromium: a non-empty screenshot, and no network request."""

import json
import shutil
import subprocess

import numpy as np

from pipeline.ui import report
from tests.support.tools import CHROMIUM, require_tool


def _chromium():
    for name in ("chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return require_tool("chromium", CHROMIUM)


def _render(page: str, out_dir) -> tuple:
    """Screenshots ``page`` and returns (image as a grey array, URLs the page itself requested)."""
    screenshot, netlog = out_dir / "shot.png", out_dir / "netlog.json"
    subprocess.run([
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={out_dir / 'profile'}", "--window-size=1200,3000",
        f"--log-net-log={netlog}", f"--screenshot={screenshot}", f"file://{page}",
    ], check=True, capture_output=True, timeout=120)
    from PIL import Image

    image = np.asarray(Image.open(screenshot).convert("L"), dtype=float)
    log = json.load(open(netlog))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # Chromium's own background traffic is browser-initiated ("not an origin"); what a page
    # asks for carries the page's origin (opaque, "null", for a file:// page).
    page_urls = {e["params"]["url"] for e in log["events"]
                 if e["type"] == start_job and "url" in e.get("params", {})
                 and e["params"].get("initiator") != "not an origin"}
    return image, page_urls


def test_report_renders_offline_in_headless_chromium(tiny_pipeline_runs, tmp_path):
    config, (first, _, _) = tiny_pipeline_runs
    page = report.write_report(first, config, str(tmp_path / "report"))
    (tmp_path / "run").mkdir()
    image, page_urls = _render(page, tmp_path / "run")
    assert image.shape == (3000, 1200) and image.std() > 20  # a real picture, not a blank page
    assert not [u for u in page_urls if u.startswith(("http:", "https:"))], page_urls


def test_the_network_check_catches_a_page_that_fetches(tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text("<html><body><h1>leaky</h1><img src='http://127.0.0.1:9/pixel.png'></body></html>")
    (tmp_path / "run").mkdir()
    _, page_urls = _render(str(page), tmp_path / "run")
    assert "http://127.0.0.1:9/pixel.png" in page_urls
