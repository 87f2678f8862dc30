"""The MLflow UI (started the README's way) shows the study's runs: a headless Chromium screenshot."""

from __future__ import annotations

import math
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from pipeline_copy import BIN, dvc, environment, free_ports, project_copy, small_params, stop_group

from alexnet.study_view import KEY_COLUMNS

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


def five_epochs(params: dict) -> None:
    """The small profile with curves worth a chart."""
    small_params(params)
    params["train"]["epochs"] = 5


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def shows_value(text: str, value: float) -> bool:
    """Whether the runs table's text holds the metric's value, however it prints it.

    The grid prints JavaScript's form of the number ("0.3333333134651184", "-1.986821490662649e-8"), which is not
    Python's ("-1.986821490662649e-08"), so compare numbers, not strings.
    """
    return any(math.isclose(float(token), value, rel_tol=1e-6, abs_tol=1e-12) for token in NUMBER.findall(text))


def runs_table_text(page, values: list[float], timeout_ms: int = 60_000) -> str:
    """The runs table's text once it shows every value, or after a bounded wait (the asserts then say what is missing).

    The grid draws run names before their metric values arrive: on a loaded CI machine a table read as soon as
    the names show can still hold "-" in every metric cell.
    """
    table = page.locator(".ag-root").first
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        text = table.inner_text()
        if all(shows_value(text, value) for value in values) or time.monotonic() > deadline:
            return text
        page.wait_for_timeout(500)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
def test_ui_opens_the_study_view_with_key_metrics_and_overlaid_curves(tmp_path):
    """The study view stored by compare: key metric columns with values, then val error curves of every run.

    After "Override saved view" (once per browser: MLflow keeps the runs table's columns in local storage)
    the plain experiment address opens on the same columns.
    """
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    project = project_copy(tmp_path / "project", five_epochs)
    dvc(project, "repro")
    with sqlite3.connect(project / "mlflow.db") as db:
        (experiment_id,) = db.execute("select experiment_id from experiments where name = 'alexnet'").fetchone()
        (baseline_id,) = db.execute(
            "select run_uuid from runs where name = 'baseline-s0' and lifecycle_stage = 'active'"
        ).fetchone()
        metrics = dict(db.execute("select key, value from latest_metrics where run_uuid = ?", (baseline_id,)))
    key_values = [metrics[column] for column in KEY_COLUMNS]
    (port,) = free_ports()
    # Its own session: `mlflow ui` forks workers and job consumers, and all of them must stop with it.
    log = tmp_path / "ui.log"
    with log.open("w") as output:
        ui = subprocess.Popen([str(BIN / "alexnet"), "ui", "--port", str(port)], cwd=project, env=environment(),
                              stdout=output, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        links = [line.split()[-1] for line in log.read_text().splitlines() if "viewStateShareKey" in line]
        assert links, f"`alexnet ui` names no study view:\n{log.read_text()[-2000:]}"
        study_url = links[0]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS[1:])
            page = browser.new_page(viewport={"width": 1700, "height": 800})
            page.goto(study_url)
            page.get_by_text("baseline-s0").first.wait_for(timeout=90_000)
            page.get_by_role("button", name="Close").last.click()  # the assistant panel
            table = runs_table_text(page, key_values)
            page.get_by_text("Override saved view").click()

            page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs")
            page.reload()  # a fresh page: what it shows now comes from the browser's saved view, not memory
            page.get_by_text("train_val_gap").first.wait_for(timeout=90_000)
            page.get_by_text("baseline-s0").first.wait_for(timeout=60_000)
            reopened = runs_table_text(page, key_values)
            page.screenshot(path=SCREENSHOTS / "mlflow-runs.png")

            page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?compareRunsMode=CHART")
            page.get_by_text("baseline-s0 (val_top1_error)").first.wait_for(timeout=90_000)
            page.wait_for_timeout(2_000)
            page.screenshot(path=SCREENSHOTS / "mlflow-charts.png")
            charts = page.content()

            page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs/{baseline_id}/artifacts")
            page.get_by_text("figures").first.wait_for(timeout=60_000)
            page.get_by_text("figures").first.click()
            page.get_by_text("conv1_kernels.png").first.wait_for(timeout=60_000)
            artifacts_page = page.content()
            browser.close()
    finally:
        stop_group(ui)
    for name, view in (("the study view", table), ("the saved view after reload", reopened)):
        for column in KEY_COLUMNS:
            assert column in view, f"{column} is not a column of the runs table in {name}"
            value = metrics[column]
            assert shows_value(view, value), f"{column}'s value {value} is not shown in {name} after 60 s"
        assert "prepared-train" in view, "the Dataset column names the prepared data"
    for run_name in ("baseline-s0", "no_lrn-s0"):
        assert f"{run_name} (val_top1_error)" in charts, f"{run_name}'s val error curve is not in the chart"
    for figure in ("top5_predictions.png", "nearest_neighbours.png", "confusion.png"):
        assert figure in artifacts_page, f"{figure} is not among the run's artifacts"
    assert all((SCREENSHOTS / name).stat().st_size > 10_000 for name in ("mlflow-runs.png", "mlflow-charts.png"))
