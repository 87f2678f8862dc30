"""`dvc exp run --queue` twice + `dvc queue start`: both experiments in `dvc exp show` and one MLflow store."""

from __future__ import annotations

import json
import sqlite3

import pytest
from pipeline_copy import dvc, dvc_queue, project_copy, small_params


def one_variant(params):
    small_params(params)
    params["ablations"]["run"] = ["baseline"]


@pytest.mark.slow
def test_two_queued_experiments_land_in_exp_show_and_the_project_store(tmp_path):
    project = project_copy(tmp_path / "project", one_variant)
    dvc(project, "repro")
    dvc(project, "exp", "run", "--queue", "-n", "drop-a", "-S", "model.dropout=0.3")
    dvc(project, "exp", "run", "--queue", "-n", "drop-b", "-S", "model.dropout=0.1")
    with dvc_queue(project) as wait:
        status = wait()
        assert "Failed" not in status, dvc(project, "queue", "logs", "drop-a", timeout=120) + status

    shown = json.loads(dvc(project, "exp", "show", "--json"))
    names = {experiment.get("name") for commit in shown for experiment in (commit.get("experiments") or [])}
    assert {"drop-a", "drop-b"} <= names, names

    with sqlite3.connect(project / "mlflow.db") as db:
        experiments = {
            value for (value,) in db.execute("select value from tags where key = 'dvc_exp_name'").fetchall()
        }
    assert {"drop-a", "drop-b"} <= experiments, experiments
    assert not list((project / ".dvc" / "tmp").rglob("mlflow.db")), "queued runs must not write a private store"


@pytest.mark.slow
def test_queued_sweep_lands_in_the_report(tmp_path):
    """An ad-hoc `dvc exp run --queue -S ...` shows up in the study report with its experiment name."""

    project = project_copy(tmp_path / "project", one_variant)
    dvc(project, "repro")
    dvc(project, "exp", "run", "--queue", "-n", "sweep-lr", "-S", "train.learning_rate=0.02")
    with dvc_queue(project) as wait:
        status = wait()
    assert "Failed" not in status, status
    dvc(project, "exp", "apply", "sweep-lr")
    report = (project / "reports" / "ablations.md").read_text()
    assert "| sweep-lr | baseline-s0 | baseline |" in report, report
    assert "| workspace | baseline-s0 | baseline |" in report, "the earlier workspace run is listed too"
