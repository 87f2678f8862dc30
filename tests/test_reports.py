"""The compare stage's rendering: variant table, the claims' verdict table side by side, JSON, matrix expansion."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from pipeline_copy import BIN, REPO, dvc, environment, project_copy, read_params, stage_command

from alexnet.claims import RunResult
from alexnet.config import parse
from alexnet.reports import build_report


def history(reach_at: int, epochs: int = 8, val: float = 0.5):
    return [{"epoch": e, "top1_error": 0.1, "val_top1_error": val, "seconds": 1.0,
             "train_eval_top1_error": 0.2 if e >= reach_at else 0.6} for e in range(1, epochs + 1)]  # fmt: skip


def per_image(seed: int, images: int = 300):
    rng = np.random.default_rng(seed)
    centre = (rng.random(images) < 0.7).astype(int)
    ten = np.where(rng.random(images) < 0.1, 1, centre)
    return {"index": np.arange(images), "label": np.arange(images) % 10, "top1_correct": centre,
            "top5_correct": np.ones(images, int), "ten_crop_top1_correct": ten,
            "ten_crop_top5_correct": np.ones(images, int)}  # fmt: skip


def run(variant, seed, top1, reach_at=3, images=True):
    metrics = {"top1_error": top1, "top5_error": 0.05, "ten_crop_top1_error": top1 - 0.01, "classes": 10}
    return RunResult(f"{variant}-s{seed}", variant, seed, metrics, history(reach_at),
                     per_image=per_image(seed) if images else None)  # fmt: skip


def test_report_puts_effect_interval_paper_value_and_verdict_side_by_side(tmp_path, raw_params):
    runs = [run("baseline", s, 0.30 + 0.01 * s) for s in range(3)]
    runs += [run("no_lrn", s, 0.33 + 0.01 * s + 0.002 * s) for s in range(3)]
    runs += [run("one_tower", 0, 0.31)]
    figure1 = {"seeds": [{"seed": s, "epochs_to_target": {"relu": 2, "tanh": 9 + s}, "epochs": 16} for s in range(3)]}
    report = build_report(parse(raw_params), runs, tmp_path, figure1)
    text = report.markdown.read_text()
    assert "\n| baseline | 3 |" in text and "\n| no_lrn | 3 |" in text
    assert "| one_tower | 1 |" in text and "extra (no claim)" in text
    header = next(line for line in text.splitlines() if line.startswith("| claim |"))
    assert header.split(" | ")[1:6] == ["paper", "paper's value", "our effect [95% interval]", "seeds", "verdict"]
    lrn = next(line for line in text.splitlines() if line.startswith("| LRN (top-1) |"))
    effect = report.claim("lrn_top1").estimate
    assert f"+{effect.mean * 100:.2f} pt [+{effect.low * 100:.2f}, +{effect.high * 100:.2f}]" in lrn
    assert "| 1.4 pt |" in lrn and "**reproduced**" in lrn
    assert "**not testable (10 classes)**" in text
    assert "claims tested" in text and "Holm" in text
    summary = json.loads((tmp_path / "ablations.json").read_text())
    rows = {row["key"]: row for row in summary["claims"]}
    assert rows["lrn_top1"]["effect"] == effect.mean * 100 and rows["lrn_top1"]["verdict"] == "reproduced"
    assert rows["relu_figure1"]["seeds"] == 3 and summary["claims_tested"] >= 2
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert "![claims" in text and (tmp_path / "claims.png") in report.files
    with Image.open(tmp_path / "claims.png") as image:  # a drawn forest plot, not a blank canvas
        assert np.asarray(image.convert("L")).std() > 10


def test_flat_metrics_and_verdict_table_carry_every_claims_interval(tmp_path, raw_params):
    runs = [run("baseline", s, 0.30 + 0.01 * s) for s in range(2)] + [run("no_lrn", s, 0.34) for s in range(2)]
    report = build_report(parse(raw_params), runs, tmp_path)
    metrics = report.flat_metrics()
    estimate = report.claim("lrn_top1").estimate
    assert metrics["claim.lrn_top1.effect"] == estimate.mean * 100
    assert metrics["claim.lrn_top1.low"] == estimate.low * 100 and metrics["claim.lrn_top1.high"] == estimate.high * 100
    assert "claim.overlap_pool_top1.effect" not in metrics  # not run
    table = report.verdict_table()
    assert len({len(column) for column in table.values()}) == 1
    assert table["claim"][table["verdict"].index("not run")]
    json.dumps(table)  # an MLflow table artifact is JSON


def test_old_histories_fall_back_to_the_running_metric_and_say_so(tmp_path, raw_params):
    old = [{"epoch": e, "top1_error": 0.5 if e < 4 else 0.2, "val_top1_error": 0.4, "seconds": 1.0}
           for e in range(1, 6)]  # fmt: skip
    runs = [RunResult(f"{v}-s{s}", v, s, {"top1_error": 0.3}, old) for v in ("baseline", "no_dropout") for s in (0, 1)]
    report = build_report(parse(raw_params), runs, tmp_path)
    iterations = report.claim("dropout_iterations")
    assert iterations.estimate.mean == 0.0 and any("running metric" in note for note in iterations.notes)
    row = next(line for line in report.markdown.read_text().splitlines() if line.startswith("| Dropout (iterations)"))
    assert "running train metric" in row


def test_matrix_expands_to_the_variants_in_params(tmp_path):
    def three_variants_two_seeds(params):
        params["ablations"].update(run=["baseline", "tanh", "one_tower"], seeds=[0, 1])

    project = project_copy(tmp_path / "project", three_variants_two_seeds)
    listed = dvc(project, "stage", "list", "--name-only", timeout=120).split()
    trains = {name for name in listed if name.startswith("train@")}
    assert trains == {f"train@{variant}-{seed}" for variant in ("baseline", "tanh", "one_tower") for seed in (0, 1)}
    assert {name.replace("train@", "evaluate@") for name in trains} <= set(listed)


def write_run_folders(project, runs: list[RunResult]) -> None:
    """What train@ and evaluate@ leave for compare: run.json, metrics.json, history.csv, per_image.csv."""
    for result in runs:
        (project / "models" / result.name).mkdir(parents=True)
        (project / "models" / result.name / "run.json").write_text(json.dumps({"variant": result.variant,
                                                                               "seed": result.seed}))  # fmt: skip
        folder = project / "reports" / "runs" / result.name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(result.metrics))
        for name, rows in (("history.csv", result.history), ("per_image.csv", None)):
            with (folder / name).open("w", newline="") as handle:
                writer = csv.writer(handle)
                if rows is not None:
                    writer.writerow(rows[0])
                    writer.writerows(row.values() for row in rows)
                else:
                    writer.writerow(result.per_image)
                    writer.writerows(zip(*(column.tolist() for column in result.per_image.values()), strict=True))


def test_compare_stage_logs_the_verdict_table_and_claim_intervals_to_the_study_run(tmp_path):
    import mlflow

    runs = [run("baseline", s, 0.30 + 0.01 * s) for s in range(3)]
    runs += [run("no_lrn", s, 0.33 + 0.013 * s) for s in range(3)]
    write_run_folders(tmp_path, runs)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(read_params(), sort_keys=False))
    _python, script, *arguments = stage_command("compare")
    result = subprocess.run(
        [str(BIN / "python"), str(REPO / script), *arguments], cwd=tmp_path,
        env=environment({"DVC_ROOT": str(tmp_path)}), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    claims = {row["key"]: row for row in json.loads((tmp_path / "reports" / "ablations.json").read_text())["claims"]}
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (study,) = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.kind = 'study'")
    for key in ("lrn_top1", "ten_crop_top1"):
        for bound in ("effect", "low", "high"):
            assert study.data.metrics[f"claim.{key}.{bound}"] == claims[key][bound]
    table_file = client.download_artifacts(study.info.run_id, "report/verdicts.json", str(tmp_path))
    table = json.loads(Path(table_file).read_text())
    rows = {row[table["columns"].index("claim")]: row for row in table["data"]}
    assert rows["LRN (top-1)"][table["columns"].index("verdict")] == claims["lrn_top1"]["verdict"]
    assert rows["LRN (top-5)"][table["columns"].index("verdict")] == "not testable (10 classes)"
