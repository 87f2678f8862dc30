"""Rendering a study from its runs: variant table, the verdict table side by side, JSON, `alexnet report` (the
compare stage's code), and the committed reports re-rendered byte for byte from their committed runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pipeline_copy import BIN, REPO, dvc, environment, project_copy, read_params, stage_command
from runs_folder import write_runs

from alexnet.claims import evaluate_claims
from alexnet.cli import main
from alexnet.report_claims import effect_text
from alexnet.reports import report_from_folder, write_report
from alexnet.runs import RunResult


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


def run(variant, seed, top1, reach_at=3, images=True, ten_crop_gain=None):
    gain = 0.01 + 0.002 * seed if ten_crop_gain is None else ten_crop_gain
    metrics = {"top1_error": top1, "top5_error": 0.05, "ten_crop_top1_error": top1 - gain, "classes": 10}
    return RunResult(f"{variant}-s{seed}", variant, seed, metrics, history(reach_at),
                     per_image=per_image(seed) if images else None)  # fmt: skip


def test_report_puts_effect_interval_paper_value_and_verdicts_side_by_side(tmp_path):
    runs = [run("baseline", s, 0.30 + 0.01 * s) for s in range(3)]
    runs += [run("no_lrn", s, 0.33 + 0.01 * s + 0.002 * s) for s in range(3)]
    runs += [run("one_tower", 0, 0.31)]
    figure1 = {"seeds": [{"seed": s, "epochs_to_target": {"relu": 2, "tanh": 9 + s}, "epochs": 16} for s in range(3)]}
    report = write_report(runs, tmp_path, figure1)
    text = report.markdown.read_text()
    assert "\n| baseline | 3 |" in text and "\n| no_lrn | 3 |" in text
    assert "| one_tower | 1 |" in text and "extra (no claim)" in text
    header = next(line for line in text.splitlines() if line.startswith("| claim |"))
    assert header.split(" | ")[1:7] == ["paper", "paper's value", "our effect [95% interval]", "seeds", "direction",
                                        "magnitude"]  # fmt: skip
    lrn = next(line for line in text.splitlines() if line.startswith("| LRN (top-1) |"))
    effect = report.claim("lrn_top1").estimate
    assert f"+{effect.mean * 100:.2f} pt [+{effect.low * 100:.2f}, +{effect.high * 100:.2f}]" in lrn
    assert "| 1.4 pt |" in lrn and "**reproduced**" in lrn and "pooled t, df 2" in lrn
    assert "**not testable (10 classes)**" in text
    assert "claims tested" in text and "Holm" in text
    summary = json.loads((tmp_path / "ablations.json").read_text())
    rows = {row["key"]: row for row in summary["claims"]}
    assert rows["lrn_top1"]["effect"] == effect.mean * 100 and rows["lrn_top1"]["direction"] == "reproduced"
    assert rows["relu_figure1_glorot"]["seeds"] == 3 and summary["claims_tested"] >= 2
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert "![claims" in text and (tmp_path / "claims.png") in report.files
    with Image.open(tmp_path / "claims.png") as image:  # a drawn forest plot, not a blank canvas
        assert np.asarray(image.convert("L")).std() > 10


def test_flat_metrics_and_verdict_table_carry_every_claims_interval(tmp_path):
    runs = [run("baseline", s, 0.30 + 0.01 * s) for s in range(3)] + [run("no_lrn", s, 0.34 + 0.002 * s ** 2)
                                                                      for s in range(3)]  # fmt: skip
    report = write_report(runs, tmp_path)
    metrics = report.flat_metrics()
    estimate = report.claim("lrn_top1").estimate
    assert metrics["claim.lrn_top1.effect"] == estimate.mean * 100
    assert metrics["claim.lrn_top1.low"] == estimate.low * 100 and metrics["claim.lrn_top1.high"] == estimate.high * 100
    assert "claim.overlap_pool_top1.effect" not in metrics  # not run
    table = report.verdict_table()
    assert len({len(column) for column in table.values()}) == 1
    assert table["claim"][table["direction"].index("not run")]
    json.dumps(table)  # an MLflow table artifact is JSON


def test_headline_counts_each_verdict_after_holm(tmp_path):
    # LRN: p about 0.03 at df 4, reproduced before Holm, fails it (x3); pooling: p 0.001, survives, larger than 0.4;
    # 10-crop: every seed gains exactly 1 point, so no spread: tested, never decisive
    effects = {"no_lrn": [0.010, 0.020, 0.015], "no_overlap_pool": [0.030, 0.032, 0.031],
               "no_pca_lighting": [0.01, -0.01, 0.0]}  # fmt: skip
    runs = [run("baseline", s, 0.30 + 0.02 * s, images=False, ten_crop_gain=0.01) for s in range(3)]
    runs += [run(v, s, 0.30 + 0.02 * s + d[s], images=False) for v, d in effects.items() for s in range(3)]
    report = write_report(runs, tmp_path)
    assert report.claim("lrn_top1").direction == "reproduced" and report.claim("lrn_top1").holm_survives is False
    text = report.markdown.read_text()
    assert "Direction, after Holm over the 4: **1 reproduced, 0 opposite, 3 inconclusive** (2 decisive before" in text
    assert "**2 consistent, 0 smaller than the paper, 1 larger than the paper**" in text  # LRN and PCA; pooling
    pool = next(line for line in text.splitlines() if line.startswith("| Overlapping pooling (top-1)"))
    assert "| larger than the paper | survives / survives |" in pool


def test_a_censored_ratio_prints_what_the_data_support_at_95_percent():
    runs = [run("baseline", s, 0.30, reach_at=99) for s in range(3)]
    runs += [run("no_dropout", s, 0.29, reach_at=4 + s) for s in range(3)]
    one_seed = {"seeds": [{"seed": 0, "epochs_to_target": {"relu": 10, "tanh": None}, "epochs": 15}]}
    claims = {result.claim.key: result for result in evaluate_claims(runs, one_seed)}
    iterations = claims["dropout_iterations"]
    low = iterations.estimate.low
    assert low < iterations.estimate.mean  # the bound of the means is not what 95% supports
    assert effect_text(iterations) == f">= {np.exp(low):.2f}x at 95% (censored at 8 epochs)"
    assert effect_text(claims["relu_figure1_glorot"]) == f">= {15 / 11:.2f}x after 15 epochs (1 seed)"  # 15 / (10 + 1)


def test_report_command_and_compare_render_the_same_bytes(tmp_path):
    runs = [run("baseline", s, 0.30 + 0.01 * s) for s in range(3)]
    runs += [run("no_lrn", s, 0.33 + 0.01 * s + 0.002 * s) for s in range(3)]
    write_runs(tmp_path / "study" / "runs", runs)
    figure1 = {"seeds": [{"seed": s, "epochs_to_target": {"relu": 2, "tanh": 9 + s}, "epochs": 16} for s in range(3)]}
    (tmp_path / "study" / "figure1").mkdir()
    (tmp_path / "study" / "figure1" / "figure1.json").write_text(json.dumps(figure1))
    main(["report", str(tmp_path / "study" / "runs"), "--out", str(tmp_path / "study")])  # figure1/ found beside
    write_runs(tmp_path / "reports" / "runs", runs, models_dir=tmp_path / "models")  # the workspace's layout
    report_from_folder(tmp_path / "reports" / "runs", tmp_path / "reports",
                       tmp_path / "study" / "figure1" / "figure1.json", models=tmp_path / "models")  # fmt: skip
    for name in ("ablations.md", "ablations.json", "curves.csv", "curves.png", "claims.png"):
        assert (tmp_path / "study" / name).read_bytes() == (tmp_path / "reports" / name).read_bytes(), name
    assert '"relu_figure1_glorot"' in (tmp_path / "study" / "ablations.json").read_text()
    summary = json.loads((tmp_path / "study" / "ablations.json").read_text())
    assert next(row for row in summary["claims"] if row["key"] == "relu_figure1_glorot")["seeds"] == 3


def test_compare_adds_the_mlflow_stores_runs_as_a_last_section(tmp_path):
    runs = [run("baseline", s, 0.30 + 0.01 * s) for s in range(2)]
    tracked = [{"dvc_exp_name": "sweep-lr", "run": "baseline-s0", "variant": "baseline", "seed": "0",
                "git_commit": "abcdef12", "top1_error": 0.3, "top5_error": 0.05, "ten_crop_top1_error": 0.29}]
    plain = write_report(runs, tmp_path / "plain").markdown.read_text()
    text = write_report(runs, tmp_path / "tracked", tracked=tracked).markdown.read_text()
    assert text.startswith(plain) and "## Every tracked run" not in plain
    assert "| sweep-lr | baseline-s0 | baseline | 0 | abcdef12 | 30.00 | 5.00 | 29.00 |" in text[len(plain) :]


RENDERED = ("ablations.md", "ablations.json", "curves.csv")  # PNGs left out: their pixels depend on fonts


@pytest.mark.parametrize("study", ["study", "default-run", "default-run-12", "dropout", "tiny100"])
def test_committed_runs_reproduce_the_committed_report_byte_for_byte(tmp_path, study):
    folder = REPO / "docs" / study
    if not (folder / "runs").is_dir():
        pytest.skip(f"docs/{study}/runs not committed yet (alexnet export-runs WORKSPACE docs/{study}/runs)")
    figure1 = folder / "figure1" / "figure1.json"
    report_from_folder(folder / "runs", tmp_path, figure1 if figure1.is_file() else None)
    for name in RENDERED:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), (
            f"docs/{study}/{name} differs from `alexnet report docs/{study}/runs`; re-render and commit it")


COMBINED = {"imagenette": "study", "dropout": "dropout", "tiny100": "tiny100"}  # docs/claims: NAME -> docs/<folder>


def test_committed_claims_across_studies_reproduce_byte_for_byte(tmp_path):
    if not (REPO / "docs" / "claims" / "claims.md").is_file():
        pytest.skip("docs/claims not rendered yet (make docs-reports)")
    main(["report", *(f"{name}={REPO / 'docs' / folder / 'runs'}" for name, folder in COMBINED.items()),
          "--out", str(tmp_path)])  # fmt: skip
    for name in ("claims.md", "claims.json", *(f"{study}/{file}" for study in COMBINED for file in RENDERED)):
        assert (tmp_path / name).read_bytes() == (REPO / "docs" / "claims" / name).read_bytes(), (
            f"docs/claims/{name} differs from `make docs-reports`; re-render and commit it")


def test_matrix_expands_to_the_variants_in_params(tmp_path):
    def three_variants_two_seeds(params):
        params["ablations"].update(run=["baseline", "tanh", "one_tower"], seeds=[0, 1])

    project = project_copy(tmp_path / "project", three_variants_two_seeds)
    listed = dvc(project, "stage", "list", "--name-only", timeout=120).split()
    trains = {name for name in listed if name.startswith("train@")}
    assert trains == {f"train@{variant}-{seed}" for variant in ("baseline", "tanh", "one_tower") for seed in (0, 1)}
    assert {name.replace("train@", "evaluate@") for name in trains} <= set(listed)


def test_compare_stage_logs_the_verdict_table_and_claim_intervals_to_the_study_run(tmp_path):
    import mlflow

    runs = [run("baseline", s, 0.30 + 0.01 * s) for s in range(3)]
    runs += [run("no_lrn", s, 0.33 + 0.013 * s) for s in range(3)]
    write_runs(tmp_path / "reports" / "runs", runs, models_dir=tmp_path / "models")
    figure1 = {"seeds": [{"seed": s, "epochs_to_target": {"relu": 2, "tanh": 9 + s}, "epochs": 16} for s in range(3)]}
    (tmp_path / "reports" / "figure1").mkdir()
    (tmp_path / "reports" / "figure1" / "figure1.json").write_text(json.dumps(figure1))  # the figure1 stage's
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
    for column in ("direction", "magnitude", "seeds_for_80_power"):
        assert rows["LRN (top-1)"][table["columns"].index(column)] == claims["lrn_top1"][column]
    assert rows["LRN (top-5)"][table["columns"].index("direction")] == "not testable (10 classes)"
