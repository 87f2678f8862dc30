"""The compare stage's statistics and verdict rule on hand-made numbers, and the matrix expansion."""

from __future__ import annotations

import pytest
from pipeline_copy import dvc, project_copy

from alexnet.config import parse
from alexnet.reports import Estimate, RunResult, build_report, paired_delta, verdict


def run(variant, seed, top1, top5=0.1, history=None):
    return RunResult(f"{variant}-s{seed}", variant, seed, {"top1_error": top1, "top5_error": top5}, history or [])


@pytest.mark.parametrize(
    ("values", "paper", "expected"),
    [
        ([0.012, 0.015, 0.014], 0.014, "reproduced"),
        ([0.003, 0.004, 0.005], 0.014, "direction only"),
        ([-0.010, -0.012, -0.011], 0.014, "not reproduced"),
        ([0.010, -0.008, 0.004], 0.014, "inconclusive"),
        ([0.02], 0.014, "reproduced (single run)"),
        ([-0.02], 0.014, "not reproduced (single run)"),
    ],
)
def test_verdict_rule(values, paper, expected):
    assert verdict(Estimate.of(values), paper) == expected


def test_verdict_without_runs_says_not_run():
    assert verdict(None, 0.01) == "not run"


def test_interval_is_a_t_interval_and_single_run_has_none():
    estimate = Estimate.of([1.0, 2.0, 3.0])
    assert estimate.mean == pytest.approx(2.0)
    assert estimate.high - estimate.mean == pytest.approx(4.303 * 1.0 / 3**0.5)
    single = Estimate.of([0.5])
    assert single.low is None and "single run" in single.text()


def test_paired_delta_pairs_by_seed():
    runs = [run("baseline", 0, 0.30), run("baseline", 1, 0.40), run("no_lrn", 0, 0.33), run("no_lrn", 1, 0.42)]
    delta = paired_delta(runs, "no_lrn", "top1_error")
    assert delta.mean == pytest.approx(0.025)
    assert delta.count == 2


def test_report_has_one_row_per_variant_and_the_claims(tmp_path, raw_params):
    history = [{"epoch": 1, "top1_error": 0.5, "val_top1_error": 0.5, "seconds": 1.0},
               {"epoch": 2, "top1_error": 0.2, "val_top1_error": 0.3, "seconds": 1.0}]  # fmt: skip
    runs = [run("baseline", 0, 0.30, history=history), run("no_lrn", 0, 0.35, history=history)]
    figure1 = {"speedup": 3.0, "epochs_to_target": {"relu": 2, "tanh": 6}}
    report = build_report(parse(raw_params), runs, tmp_path, figure1)
    text = report.markdown.read_text()
    assert "| baseline |" in text and "| no_lrn |" in text
    assert "+5.00 pt (single run)" in text
    lrn = next(claim for claim in report.claims if claim["claim"] == "LRN")
    assert lrn["verdict"] == "reproduced (single run)"
    figure1 = next(claim for claim in report.claims if claim["claim"] == "ReLU (Figure 1)")
    assert figure1["measured"].startswith("3.0x") and figure1["verdict"] == "reproduced (single run)"
    pooling = next(claim for claim in report.claims if claim["claim"] == "Overlapping pooling")
    assert pooling["verdict"] == "not run"
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_matrix_expands_to_the_variants_in_params(tmp_path):
    def three_variants_two_seeds(params):
        params["ablations"].update(run=["baseline", "tanh", "one_tower"], seeds=[0, 1])

    project = project_copy(tmp_path / "project", three_variants_two_seeds)
    listed = dvc(project, "stage", "list", "--name-only", timeout=120).split()
    trains = {name for name in listed if name.startswith("train@")}
    assert trains == {f"train@{variant}-{seed}" for variant in ("baseline", "tanh", "one_tower") for seed in (0, 1)}
    assert {name.replace("train@", "evaluate@") for name in trains} <= set(listed)


def test_epoch_ratio_claims_from_histories():
    def history(reach_at):
        return [{"epoch": e, "top1_error": 0.2 if e >= reach_at else 0.6, "val_top1_error": 0.5, "seconds": 1.0}
                for e in range(1, 9)]  # fmt: skip

    from alexnet.reports import claim_rows

    runs = [run("baseline", 0, 0.3, history=history(2)), run("tanh", 0, 0.4, history=history(8)),
            run("no_dropout", 0, 0.35, history=history(1))]  # fmt: skip
    claims = {claim["claim"]: claim for claim in claim_rows(runs, 5)}
    assert claims["ReLU"]["measured"] == "4.0x (single run)"
    assert claims["ReLU"]["verdict"] == "reproduced (single run)"
    assert claims["Dropout (iterations)"]["measured"] == "2.0x (single run)"
