"""The MLflow UI (started the README's way) shows the study's runs: a headless Chromium screenshot."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from pipeline_copy import BIN, dvc, environment, free_ports, project_copy, small_params, stop_group

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


SCREENSHOTS = Path(os.environ.get("ALEXNET_SCREENSHOTS", tempfile.gettempdir()))


def wait_for(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer in {timeout}s")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
def test_ui_lists_the_study_runs_and_shows_the_figures(tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    project = project_copy(tmp_path / "project", small_params)
    dvc(project, "repro")
    with sqlite3.connect(project / "mlflow.db") as db:
        (experiment_id,) = db.execute("select experiment_id from experiments where name = 'alexnet'").fetchone()
        (baseline_id,) = db.execute(
            "select run_uuid from runs where name = 'baseline-s0' and lifecycle_stage = 'active'"
        ).fetchone()
    (port,) = free_ports()
    # Its own session: `mlflow ui` forks workers and job consumers, and all of them must stop with it.
    ui = subprocess.Popen([str(BIN / "alexnet"), "ui", "--port", str(port)], cwd=project, env=environment(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS[1:])
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs")
            page.get_by_text("study-alexnet").wait_for(timeout=90_000)
            page.locator("[role=row]", has_text="study-alexnet").locator("button").first.click()
            page.get_by_text("baseline-s0").wait_for(timeout=60_000)
            page.screenshot(path=SCREENSHOTS / "mlflow-runs.png")
            runs_page = page.content()
            page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs/{baseline_id}/artifacts")
            page.get_by_text("figures").first.wait_for(timeout=60_000)
            page.get_by_text("figures").first.click()
            page.get_by_text("conv1_kernels.png").first.click()
            page.wait_for_timeout(3_000)
            page.screenshot(path=SCREENSHOTS / "mlflow-figures.png")
            artifacts_page = page.content()
            browser.close()
    finally:
        stop_group(ui)
    for run_name in ("study-alexnet", "baseline-s0", "no_lrn-s0"):
        assert run_name in runs_page, f"{run_name} is not on the runs page"
    for figure in ("top5_predictions.png", "nearest_neighbours.png", "confusion.png"):
        assert figure in artifacts_page, f"{figure} is not among the run's artifacts"
    assert (SCREENSHOTS / "mlflow-runs.png").stat().st_size > 10_000
