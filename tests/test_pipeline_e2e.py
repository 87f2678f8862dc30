"""`dvc repro` end to end in a temporary git copy: the DAG, its caching, the MLflow store, the reports."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml
from pipeline_copy import dvc, project_copy, small_params, stages_run
from test_quiet import ALARMING

TAGS = ("variant", "seed", "dvc_stage", "git_commit", "dvc_exp_name", "data_hash")


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    project = project_copy(tmp_path_factory.mktemp("e2e") / "project", small_params)
    first = dvc(project, "repro", env={"TF_CPP_MIN_LOG_LEVEL": "2"})  # as `make run` sets it
    return project, first


def test_first_repro_runs_every_stage(reproduced):
    project, output = reproduced
    assert stages_run(output) == {
        "ingest", "preprocess", "train@baseline-0", "train@no_lrn-0", "evaluate@baseline-0",
        "evaluate@no_lrn-0", "figure1", "compare",
    }  # fmt: skip
    report = (project / "reports" / "ablations.md").read_text()
    assert "\n| baseline | 1 |" in report and "\n| no_lrn | 1 |" in report, report
    assert (project / "models" / "baseline-s0" / "model.keras").stat().st_size > 0


def test_the_console_shows_stages_and_results_and_nothing_that_reads_like_an_error(reproduced):
    """`make run`'s output: no TensorFlow start-up lines (absl preamble, I/W/E0000, a failed cuInit without a GPU)."""
    _, output = reproduced
    noise = [line for line in output.splitlines() if ALARMING.search(line) or line.startswith("I0000")]
    assert not noise, "\n".join(noise[:10])
    assert "evaluate: baseline-s0 top-1 error" in output and "compare: 2 runs" in output


def test_report_metrics_are_fractions(reproduced):
    project, _ = reproduced
    for name in ("baseline-s0", "no_lrn-s0"):
        metrics = json.loads((project / "reports" / "runs" / name / "metrics.json").read_text())
        errors = {key: value for key, value in metrics.items() if key.endswith("_error")}
        assert {"top1_error", "top5_error", "ten_crop_top1_error"} <= set(errors)
        assert all(0.0 <= value <= 1.0 for value in errors.values()), errors
    summary = json.loads((project / "reports" / "ablations.json").read_text())
    assert {row["variant"] for row in summary["variants"]} == {"baseline", "no_lrn"}


def test_mlflow_store_has_one_run_per_variant_with_tags_and_epochs(reproduced):
    project, _ = reproduced
    with sqlite3.connect(project / "mlflow.db") as db:
        runs = db.execute(
            "select r.run_uuid, t.value from runs r join tags t on t.run_uuid = r.run_uuid"
            " where t.key = 'variant'"
        ).fetchall()
        assert sorted(variant for _, variant in runs) == ["baseline", "no_lrn"]
        for run_id, _ in runs:
            tags = dict(db.execute("select key, value from tags where run_uuid = ?", (run_id,)).fetchall())
            assert set(TAGS) <= set(tags), tags
            assert len(tags["git_commit"]) == 40
            steps = db.execute(
                "select step from metrics where run_uuid = ? and key = 'val_top1_error' order by step",
                (run_id,),
            ).fetchall()
            assert [step for (step,) in steps] == [1, 2]
            evaluated = db.execute(
                "select count(*) from metrics where run_uuid = ? and key = 'eval_top1_error'", (run_id,)
            ).fetchone()[0]
            assert evaluated == 1
            assert tags.get("mlflow.parentRunId"), "variant runs are children of the study run"
            models = db.execute("select name from logged_models where source_run_id = ?", (run_id,)).fetchall()
            assert models == [("model",)], "the trained model is logged with log_model(name='model')"


def test_second_repro_does_nothing_and_model_change_reruns_only_downstream(reproduced):
    project, _ = reproduced
    again = dvc(project, "repro")
    assert stages_run(again) == set()
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["model"]["dropout"] = 0.25
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = dvc(project, "repro")
    assert stages_run(changed) == {
        "train@baseline-0", "train@no_lrn-0", "evaluate@baseline-0", "evaluate@no_lrn-0", "compare",
    }  # fmt: skip
