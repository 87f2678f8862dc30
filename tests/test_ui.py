"""The MLflow UI (started the README's way) shows the study's runs: a headless Chromium screenshot."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.request

import pytest
from pipeline_copy import BIN, dvc, environment, project_copy, small_params

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1500,1000",
               "--virtual-time-budget=20000", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")
def test_ui_lists_the_study_runs(tmp_path):
    project = project_copy(tmp_path / "project", small_params)
    dvc(project, "repro")
    with sqlite3.connect(project / "mlflow.db") as db:
        (experiment_id,) = db.execute("select experiment_id from experiments where name = 'alexnet'").fetchone()
        (baseline_id,) = db.execute(
            "select run_uuid from runs where name = 'baseline-s0' and lifecycle_stage = 'active'"
        ).fetchone()
    port = free_port()
    ui = subprocess.Popen([str(BIN / "alexnet"), "ui", "--port", str(port)], cwd=project, env=environment(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        url = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}"
        screenshot = tmp_path / "runs.png"
        chromium(tmp_path, f"--screenshot={screenshot}", url)
        page = chromium(tmp_path, "--dump-dom", url).stdout
        artifacts_url = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs/{baseline_id}/artifacts"
        artifacts_screenshot = tmp_path / "artifacts.png"
        chromium(tmp_path, f"--screenshot={artifacts_screenshot}", artifacts_url)
        artifacts_page = chromium(tmp_path, "--dump-dom", artifacts_url).stdout
    finally:
        ui.terminate()
        ui.wait(timeout=30)
    assert screenshot.stat().st_size > 10_000
    for run_name in ("baseline-s0", "no_lrn-s0", "study-alexnet"):
        assert run_name in page, f"{run_name} not on the runs page"
    assert "figures" in artifacts_page and "model" in artifacts_page, "the run's figures are in the UI"
    assert artifacts_screenshot.stat().st_size > 10_000
