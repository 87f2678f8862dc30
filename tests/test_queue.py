"""Queued and --temp DVC experiments: each trains with its own -S overrides, and lands in one MLflow store.

DVC sets DVC_ROOT to the parent repository in a --temp/--queue run; params must still come from the run's
own copy (issue 11: every queued run trained with the main workspace's params).
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import time
import zipfile

import pytest
from pipeline_copy import BIN, REPO, dvc, dvc_queue, environment, project_copy, small_params

OVERRIDES = {"train.learning_rate": 0.02, "model.dropout": 0.3}  # params.yaml: 0.01 and 0.5


def one_variant(params):
    small_params(params)
    params["ablations"]["run"] = ["baseline"]
    assert params["train"]["learning_rate"] != OVERRIDES["train.learning_rate"]
    assert params["model"]["dropout"] != OVERRIDES["model.dropout"]


def overrides(values: dict) -> list[str]:
    return [argument for key, value in values.items() for argument in ("-S", f"{key}={value}")]


@pytest.fixture
def queue_project(tmp_path):
    """A project copy with one variant; queue workers are stopped by pipeline_copy.dvc_queue."""
    return project_copy(tmp_path / "project", one_variant)


def _model_dropout_rates(model_file) -> set[float]:
    with zipfile.ZipFile(model_file) as archive:
        config = json.loads(archive.read("config.json"))
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Dropout":
                found.add(float(node["config"]["rate"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def assert_trained_with(project, experiment: str, learning_rate: float, dropout: float) -> None:
    """Apply the experiment and check the values its run actually used: run.json, history, model, MLflow."""
    dvc(project, "exp", "apply", experiment)
    run = json.loads((project / "models/baseline-s0/run.json").read_text())
    assert (run["learning_rate"], run["dropout"]) == (learning_rate, dropout), run
    # where the values came from, true after the run: params.yaml at a commit, with this experiment's -S overrides
    assert (run["params_source"], run["dvc_exp_name"]) == ("params.yaml", experiment), run
    with open(project / "reports/runs/baseline-s0/history.csv", newline="") as handle:
        first_epoch = next(csv.DictReader(handle))
    assert float(first_epoch["learning_rate"]) == pytest.approx(learning_rate), first_epoch
    assert _model_dropout_rates(project / "models/baseline-s0/model.keras") == {dropout}
    with sqlite3.connect(project / "mlflow.db") as db:
        rows = db.execute(
            "select p.key, p.value from params p join tags t on t.run_uuid = p.run_uuid "
            "where t.key = 'dvc_exp_name' and t.value = ? and p.key in ('train.learning_rate', 'model.dropout')",
            (experiment,),
        ).fetchall()
    assert dict(rows) == {"train.learning_rate": str(learning_rate), "model.dropout": str(dropout)}, rows


@pytest.mark.slow
def test_temp_experiment_trains_with_its_overrides(queue_project):
    dvc(queue_project, "exp", "run", "--temp", "-n", "temp-lr", *overrides(OVERRIDES), timeout=1200)
    assert_trained_with(queue_project, "temp-lr", 0.02, 0.3)
    assert not list((queue_project / ".dvc" / "tmp").rglob("mlflow.db")), "a temp run must not write a private store"


@pytest.mark.slow
def test_two_queued_experiments_run_in_parallel_each_with_its_own_overrides(queue_project):
    project = queue_project
    other = {"train.learning_rate": 0.005, "model.dropout": 0.1}
    dvc(project, "exp", "run", "--queue", "-n", "queued-lr", *overrides(OVERRIDES))
    dvc(project, "exp", "run", "--queue", "-n", "queued-other", *overrides(other))
    with dvc_queue(project, workers=2) as wait:
        status = wait()
    assert "Failed" not in status, dvc(project, "queue", "logs", "queued-lr") + status

    shown = json.loads(dvc(project, "exp", "show", "--json"))
    names = {experiment.get("name") for commit in shown for experiment in (commit.get("experiments") or [])}
    assert {"queued-lr", "queued-other"} <= names, names
    assert not list((project / ".dvc" / "tmp").rglob("mlflow.db")), "queued runs must not write a private store"
    assert_trained_with(project, "queued-lr", 0.02, 0.3)
    assert_trained_with(project, "queued-other", 0.005, 0.1)


@pytest.mark.slow
def test_queued_sweep_lands_in_the_report(queue_project):
    """An ad-hoc `dvc exp run --queue -S ...` shows up in the study report with its experiment name."""
    project = queue_project
    dvc(project, "repro")
    dvc(project, "exp", "run", "--queue", "-n", "sweep-lr", "-S", "train.learning_rate=0.02")
    with dvc_queue(project) as wait:
        status = wait()
    assert "Failed" not in status, status
    dvc(project, "exp", "apply", "sweep-lr")
    report = (project / "reports" / "ablations.md").read_text()
    assert "| sweep-lr | baseline-s0 | baseline |" in report, report
    assert "| workspace | baseline-s0 | baseline |" in report, "the earlier workspace run is listed too"



OPEN_STORE = """
import sys, time
from pipeline_copy import read_params
from alexnet.config import parse
from alexnet.tracking import Tracker
import mlflow  # imported before the agreed moment, so both open the store together
cfg = parse(read_params()).tracking.model_copy(update={"on_failure": "warn", "uri": sys.argv[1]})
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
tracker = Tracker(cfg).connect()
print("failure:", tracker.failure)
"""


def test_two_runs_opening_a_fresh_store_at_once_both_track(tmp_path):
    """MLflow creates a new SQLite store's tables unlocked; `dvc queue start -j 2` on a fresh project lost
    one run's tracking to it ('table ... already exists')."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    start_at = str(time.time() + 20)
    env = environment({"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])})
    runs = [
        subprocess.Popen([str(BIN / "python"), "-c", OPEN_STORE, uri, start_at], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        for _ in range(2)
    ]
    try:
        outputs = [run.communicate(timeout=300)[0] for run in runs]
    finally:
        for run in runs:
            run.kill()
    for output in outputs:
        assert "failure: None" in output, output[-2000:]
