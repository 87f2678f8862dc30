"""Several studies in one report (issue 25) and issue 24's claim rows: made-up runs on disk, `alexnet report
NAME=RUNS ...`, the studies kept apart, Holm once over all of them; Figure 1 per init; tanh counted; the dropout
claims uncensored once the baseline crosses 25%."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runs_folder import write_runs

from alexnet.claims import evaluate_claims
from alexnet.cli import main
from alexnet.paper_claims import CLAIMS
from alexnet.report_datasets import Study, evaluate_studies
from alexnet.runs import RunResult


def history(reach_at: int | None, epochs: int = 8, val: float = 0.5):
    return [{"epoch": e, "top1_error": 0.1, "val_top1_error": val, "seconds": 1.0,
             "train_eval_top1_error": 0.2 if reach_at and e >= reach_at else 0.6}
            for e in range(1, epochs + 1)]  # fmt: skip


def made_up(variant, seed, top1, top5, classes, images=200, reach_at=3, epochs=8):
    rng = np.random.default_rng(seed)
    centre = (rng.random(images) < 1 - top1).astype(int)
    metrics = {"top1_error": top1, "top5_error": top5, "ten_crop_top1_error": top1 - 0.01,
               "ten_crop_top5_error": top5 - 0.01, "classes": classes}  # fmt: skip
    per_image = {"index": np.arange(images), "label": np.arange(images) % classes, "top1_correct": centre,
                 "top5_correct": centre, "ten_crop_top1_correct": centre, "ten_crop_top5_correct": centre}  # fmt: skip
    return RunResult(f"{variant}-s{seed}", variant, seed, metrics, history(reach_at, epochs), per_image=per_image)


def ten_classes():
    """Imagenette-like: LRN helps by 2 points top-1 on every seed (with a little spread)."""
    return [made_up(v, s, 0.30 + 0.01 * s + (0.02 + 0.002 * s if v == "no_lrn" else 0), 0.05, 10)
            for v in ("baseline", "no_lrn") for s in range(3)]  # fmt: skip


def hundred_classes():
    """Tiny-ImageNet-like: LRN hurts by 1 point top-5 on every seed, no top-1 effect."""
    return [made_up(v, s, 0.70 + 0.01 * s + (0.001 * s if v == "no_lrn" else 0),
                    0.45 + 0.01 * s - (0.01 + 0.001 * s if v == "no_lrn" else 0), 100)
            for v in ("baseline", "no_lrn") for s in range(3)]  # fmt: skip


def by_key(results):
    return {result.claim.key: result for result in results}


def test_each_study_keeps_its_own_estimate_and_holm_runs_over_all_claims_tested():
    small, large = Study("imagenette", ten_classes()), Study("tiny100", hundred_classes())
    family = evaluate_studies([small, large])
    alone = {name: by_key(evaluate_claims(runs)) for name, runs in (("imagenette", ten_classes()),
                                                                    ("tiny100", hundred_classes()))}  # fmt: skip
    for study in (small, large):  # the same estimate as the study alone: only Holm's family differs
        for key, result in by_key(study.claims).items():
            if result.estimate is not None:
                assert result.estimate.mean == pytest.approx(alone[study.name][key].estimate.mean)
    mine, theirs = by_key(small.claims), by_key(large.claims)
    assert mine["lrn_top1"].estimate.mean == pytest.approx(0.022) and mine["lrn_top5"].estimate is None
    assert theirs["lrn_top5"].estimate.mean == pytest.approx(-0.011) and theirs["lrn_top5"].direction == "opposite"
    assert mine["lrn_top5"].untestable == "10 classes" and theirs["lrn_top5"].untestable is None
    tested = [result for result in family if result.tested]
    assert {id(r) for r in tested} >= {id(mine["lrn_top1"]), id(theirs["lrn_top1"]), id(theirs["lrn_top5"])}
    # Holm over the whole family: the smallest raw p is multiplied by the family's size, not the study's
    smallest = min((result for result in tested if result.p_value is not None), key=lambda result: result.p_value)
    assert smallest.holm_p == pytest.approx(min(1.0, smallest.p_value * len(tested)))
    assert len(tested) > sum(result.tested for result in small.claims)


def test_report_command_writes_the_studies_side_by_side_and_each_studys_report(tmp_path, capsys):
    write_runs(tmp_path / "a" / "runs", ten_classes())
    write_runs(tmp_path / "b" / "runs", hundred_classes())
    main(["report", f"imagenette={tmp_path / 'a' / 'runs'}", f"tiny100={tmp_path / 'b' / 'runs'}",
          "--out", str(tmp_path / "out")])  # fmt: skip
    assert "2 studies side by side" in capsys.readouterr().out
    text = (tmp_path / "out" / "claims.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| claim |"))
    assert header.count("imagenette:") == 2 and header.count("tiny100:") == 2
    lrn5 = next(line for line in text.splitlines() if line.startswith("| LRN (top-5) |")).split(" | ")
    assert lrn5[3] == "-" and lrn5[4].startswith("not testable (10 classes)")  # imagenette's cells
    assert lrn5[5].startswith("-1.10 pt [") and lrn5[6].startswith("**opposite**")  # tiny100's
    summary = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert set(summary["studies"]) == {"imagenette", "tiny100"}
    assert summary["claims_tested"] == len(summary["holm_family"]) and "tiny100:lrn_top5" in summary["holm_family"]
    for name in ("imagenette", "tiny100"):
        own = (tmp_path / "out" / name / "ablations.md").read_text()
        assert f"Holm over all {summary['claims_tested']} claims tested in the studies reported together" in own
    for name, folder in (("imagenette", "a"), ("tiny100", "b")):  # each report beside its runs, linked
        assert (tmp_path / "out" / name / "runs").resolve() == (tmp_path / folder / "runs").resolve()
    assert "| no_lrn | 3 | 71.10 | 44.90 |" in (tmp_path / "out" / "tiny100" / "ablations.md").read_text()


@pytest.mark.parametrize("argument", ["imagenette", "Imagenette=x", "=runs", "a b=x"])
def test_a_malformed_study_argument_is_one_line_naming_the_fix(tmp_path, argument, capsys):
    write_runs(tmp_path / "runs", ten_classes())
    with pytest.raises(SystemExit):
        main(["report", f"ok={tmp_path / 'runs'}", argument, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NAME=RUNS" in err


def figure1_by_init(glorot_tanh: int, paper_tanh: int | None) -> dict:
    def seeds(tanh):
        return [{"seed": s, "epochs": 15, "epochs_to_target": {"relu": 4, "tanh": tanh}} for s in (0, 1, 2)]

    return {"data": "prepared", "tuning_seed": 100, "inits": ["glorot", "paper"], "by_init": {
        "glorot": {"seeds": seeds(glorot_tanh), "best_learning_rate": {"relu": 0.03, "tanh": 0.01},
                   "median_epochs_to_target": {"relu": 4, "tanh": glorot_tanh}},
        "paper": {"seeds": seeds(paper_tanh), "best_learning_rate": {"relu": 0.1, "tanh": 0.1},
                  "median_epochs_to_target": {"relu": 4, "tanh": paper_tanh}}}}  # fmt: skip


def test_figure1_gives_one_claim_row_per_init_each_with_its_own_ratio():
    results = by_key(evaluate_claims(ten_classes(), figure1_by_init(4, None)))
    glorot, paper = results["relu_figure1_glorot"], results["relu_figure1_paper"]
    assert glorot.claim.name == "ReLU vs tanh (Figure 1, glorot init)" and glorot.estimate.censored is None
    assert glorot.estimate.mean == pytest.approx(0.0, abs=1e-9) and glorot.magnitude == "smaller than the paper"
    assert paper.estimate.censored == "lower" and "never reached 25%" in " ".join(paper.notes)  # tanh: a bound
    assert "tuning seed 100 (not an estimate seed): relu 0.1, tanh 0.1" in " ".join(paper.notes)
    assert glorot.tested and paper.tested  # both in Holm's family


def test_an_older_figure1_file_is_read_as_the_glorot_init():
    seeds = [{"seed": s, "epochs": 15, "epochs_to_target": {"relu": 9, "tanh": 8}} for s in (0, 1, 2)]
    older = {"data": "prepared", "seeds": seeds, "median_epochs_to_target": {"relu": 9, "tanh": 8}}
    assert "relu_figure1_glorot" in by_key(evaluate_claims(ten_classes(), older))


def test_full_net_tanh_is_a_counted_claim_and_a_censored_tanh_is_its_bound():
    claim = next(claim for claim in CLAIMS if claim.key == "relu_full_net")
    assert claim.extra is None and claim.variant == "tanh" and claim.against == "baseline"
    runs = [made_up("baseline", s, 0.3, 0.05, 10, reach_at=5 + s, epochs=16) for s in range(3)]
    runs += [made_up("tanh", s, 0.5, 0.1, 10, reach_at=None, epochs=16) for s in range(3)]
    result = by_key(evaluate_claims(runs))["relu_full_net"]
    assert result.tested and result.estimate.censored == "lower" and result.direction == "reproduced"


def test_dropout_claims_read_uncensored_epochs_once_the_baseline_crosses_25_percent():
    """The dropout profile's point (40 epochs): both variants reach 25% inference-mode training error, so the
    iterations ratio is an estimate, not a bound; dropout's val top-1 effect is shown, never counted."""
    runs = [made_up("baseline", s, 0.30, 0.05, 10, reach_at=21 + s, epochs=40) for s in range(3)]
    runs += [made_up("no_dropout", s, 0.31, 0.05, 10, reach_at=10 + s, epochs=40) for s in range(3)]
    results = by_key(evaluate_claims(runs))
    iterations = results["dropout_iterations"]
    assert iterations.estimate.censored is None and iterations.epochs == 40
    # each count known to +-1 epoch: the log ratio's range midpoint per seed
    mids = [(np.log((b - 1) / (f + 1)) + np.log((b + 1) / (f - 1))) / 2 for b, f in ((21, 10), (22, 11), (23, 12))]
    assert iterations.estimate.mean == pytest.approx(np.mean(mids)) and 1.9 < np.exp(np.mean(mids)) < 2.1
    assert not any("never reached" in note for note in iterations.notes)
    val = results["dropout_val_top1"]
    assert val.claim.extra and not val.tested and val.estimate.mean == pytest.approx(0.01)


def test_when_neither_net_reaches_25_percent_the_claim_is_untestable_and_the_matched_row_compares_speed():
    """The committed 16-epoch study: no baseline or tanh run reaches 25%, so the counted row says so instead of
    inventing a bound; the extra row compares epochs to the lowest error tanh reached (a data-chosen target)."""

    def curve(variant, seed, errors):
        rows = [{"epoch": e, "top1_error": 0.1, "val_top1_error": 0.5, "seconds": 1.0, "train_eval_top1_error": err}
                for e, err in enumerate(errors, start=1)]  # fmt: skip
        return RunResult(f"{variant}-s{seed}", variant, seed, {"top1_error": 0.3, "classes": 10}, rows)

    runs = []
    for seed, shift in enumerate((0.0, 0.01, -0.01)):
        runs.append(curve("baseline", seed, [0.7, 0.55, 0.45 + shift, 0.40, 0.35, 0.30, 0.28, 0.27]))
        runs.append(curve("tanh", seed, [0.8, 0.7, 0.62, 0.55, 0.50, 0.47, 0.46, 0.45 + shift]))
    results = by_key(evaluate_claims(runs))
    counted, matched = results["relu_full_net"], results["relu_full_net_matched"]
    assert counted.estimate is None and counted.direction == "not testable (neither reached 25% in 8 epochs)"
    assert not counted.tested and matched.claim.extra and not matched.tested
    # tanh first reaches its best (0.45, 0.46, 0.44) at epochs 8, 7 (0.46 twice), 8; the baseline at epoch 3
    mids = [(np.log((t - 1) / (3 + 1)) + np.log((t + 1) / (3 - 1))) / 2 for t in (8, 7, 8)]
    assert matched.estimate.mean == pytest.approx(np.mean(mids)) and matched.direction == "reproduced"
    assert "targets per seed: 45.0%, 46.0%, 44.0%" in matched.notes
