"""The claims module on hand-made numbers: intervals, the verdict rule, Holm, censoring, power, the bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from alexnet.claims import (
    Estimate,
    RunResult,
    bootstrap_images,
    evaluate_claims,
    holm,
    log_ratio_estimate,
    seeds_needed,
    t_interval,
    verdict,
)


def history(reach_at: int | None, epochs: int = 16):
    return [{"epoch": e, "top1_error": 0.1, "val_top1_error": 0.4, "seconds": 1.0,
             "train_eval_top1_error": 0.2 if reach_at and e >= reach_at else 0.6}
            for e in range(1, epochs + 1)]  # fmt: skip


def run(variant, seed, top1=0.3, top5=0.05, classes=10, reach_at=3, per_image=None):
    metrics = {"top1_error": top1, "top5_error": top5, "classes": classes}
    return RunResult(f"{variant}-s{seed}", variant, seed, metrics, history(reach_at), per_image=per_image)


def study(effects: dict[str, list[float]], classes=10) -> dict:
    """baseline plus one variant per entry, whose seed s is `effects[variant][s]` worse in top-1 (and top-5)."""
    seeds = range(len(next(iter(effects.values()))))
    runs = [run("baseline", s, 0.30 + 0.02 * s, classes=classes) for s in seeds]
    for variant, deltas in effects.items():
        runs += [run(variant, s, 0.30 + 0.02 * s + deltas[s], 0.05 + deltas[s], classes=classes) for s in seeds]
    return {result.claim.key: result for result in evaluate_claims(runs)}


@pytest.mark.parametrize("df", [1, 2, 12])
def test_interval_equals_scipys_at_any_df(df):
    values = list(np.random.default_rng(df).normal(0.01, 0.02, df + 1))
    estimate = t_interval(values)
    low, high = stats.t.interval(0.95, df, loc=np.mean(values), scale=stats.sem(values))
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-12)
    assert estimate.p_value == pytest.approx(stats.ttest_1samp(values, 0.0).pvalue, rel=1e-9)


@pytest.mark.parametrize(
    ("estimate", "expected"),
    [
        (Estimate(0.02, 3, 0.005, 0.035), "reproduced"),
        (Estimate(-0.02, 3, -0.035, -0.005), "not reproduced"),
        (Estimate(0.01, 3, -0.004, 0.024), "inconclusive"),
        (Estimate(0.5, 1), "inconclusive (1 seed)"),
        (Estimate(-0.5, 1), "inconclusive (1 seed)"),
        (None, "not run"),
    ],
)
def test_verdict_rule(estimate, expected):
    assert verdict(estimate) == expected


def test_one_seed_is_inconclusive_however_large_the_effect():
    claims = study({"no_lrn": [0.10], "no_pca_lighting": [-0.10]})
    assert claims["lrn_top1"].verdict == "inconclusive (1 seed)"
    assert claims["pca_lighting_top1"].verdict == "inconclusive (1 seed)"
    assert claims["lrn_top1"].effect_text() == "+10.00 pt" and not claims["lrn_top1"].tested


def test_paper_inside_interval_and_underpowered():
    claims = study({"no_lrn": [0.000, 0.030, 0.060], "no_overlap_pool": [0.014, 0.015, 0.016]})
    wide, narrow = claims["lrn_top1"], claims["overlap_pool_top1"]
    assert wide.estimate.half_width == pytest.approx(stats.t.ppf(0.975, 2) * 0.03 / math.sqrt(3))
    assert wide.verdict == "inconclusive" and wide.underpowered and wide.paper_in_interval  # 1.4 pt inside
    assert narrow.verdict == "reproduced" and narrow.underpowered is False
    assert narrow.paper_in_interval is False  # 0.4 pt is below [1.25, 1.75]


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_a_nominally_reproduced_claim_can_fail_holm():
    a, d = 0.0325, 0.01  # t = a / (d / sqrt 3) = 5.63 at df 2: p = 0.030
    claims = study({"no_lrn": [0.020, 0.021, 0.019], "no_overlap_pool": [a - d, a, a + d],
                    "no_pca_lighting": [0.01, -0.01, 0.0]})  # fmt: skip
    lrn, pool, pca = claims["lrn_top1"], claims["overlap_pool_top1"], claims["pca_lighting_top1"]
    assert pool.estimate.p_value == pytest.approx(stats.ttest_1samp([a - d, a, a + d], 0).pvalue)
    assert pool.estimate.p_value < 0.05 and pool.verdict == "reproduced"
    assert pool.holm_p == pytest.approx(2 * pool.estimate.p_value) and pool.holm_survives is False
    assert lrn.holm_survives is True and lrn.holm_p == pytest.approx(3 * lrn.estimate.p_value)
    assert pca.verdict == "inconclusive" and pca.holm_survives is False
    assert sum(result.tested for result in claims.values()) == 3


def test_top5_claims_need_100_classes():
    few = study({"no_lrn": [0.01, 0.02]}, classes=10)
    assert few["lrn_top5"].verdict == "not testable (10 classes)" and not few["lrn_top5"].tested
    assert few["ten_crop_top5"].verdict == "not testable (10 classes)"
    many = study({"no_lrn": [0.01, 0.02]}, classes=100)
    assert many["lrn_top5"].verdict == "inconclusive" and many["lrn_top5"].tested


def test_censored_ratio_is_a_bound_that_can_still_reproduce():
    # with dropout (baseline) never reaches 25% in 16 epochs; without it reaches at 4, 5, 6
    runs = [run("baseline", s, reach_at=None) for s in range(3)]
    runs += [run("no_dropout", s, reach_at=4 + s) for s in range(3)]
    iterations = {r.claim.key: r for r in evaluate_claims(runs)}["dropout_iterations"]
    logs = [math.log(16 / 4), math.log(16 / 5), math.log(16 / 6)]
    assert iterations.estimate.censored == "lower" and iterations.estimate.high == math.inf
    assert iterations.estimate.mean == pytest.approx(np.mean(logs))
    assert iterations.effect_text().startswith(f">= {math.exp(np.mean(logs)):.2f}x after 16 epochs [")
    assert iterations.verdict == "reproduced" and iterations.paper_in_interval  # 2x is inside [low, inf)
    assert any("baseline-s0 (16)" in note for note in iterations.notes)


def test_censored_bound_never_decides_against_its_direction():
    # the faster run never reaches: ratio <= slow / epochs, an upper bound: never "reproduced"
    estimate, neither = log_ratio_estimate([(2, 16, None, 16), (3, 16, None, 16), (2, 16, None, 16)])
    assert estimate.censored == "upper" and estimate.low == -math.inf and neither == 0
    assert verdict(estimate) == "not reproduced"
    above, _ = log_ratio_estimate([(12, 16, None, 4), (10, 16, None, 4), (11, 16, None, 4)])  # <= 3x, 2.5x, 2.75x
    assert above.mean > 0 and verdict(above) == "inconclusive (censored)" and above.p_value == 1.0
    estimate, _ = log_ratio_estimate([(None, 16, 2, 16), (None, 16, 3, 16), (20, 30, 2, 30)])
    assert estimate.censored == "lower" and verdict(estimate) == "reproduced"
    both, _ = log_ratio_estimate([(None, 16, 2, 16), (2, 16, None, 16)])
    assert both.censored == "both" and verdict(both) == "inconclusive (censored)" and both.p_value == 1.0
    nothing, neither = log_ratio_estimate([(None, 16, None, 16)])
    assert nothing is None and neither == 1


def test_figure1_seeds_median_and_old_format():
    seeds = [{"seed": s, "epochs_to_target": {"relu": 3, "tanh": tanh}, "epochs": 16}
             for s, tanh in enumerate([9, None, 12])]  # fmt: skip
    result = {r.claim.key: r for r in evaluate_claims([run("baseline", 0)], {"seeds": seeds})}["relu_figure1"]
    assert result.estimate.seeds == 3 and result.estimate.censored == "lower"
    assert result.estimate.mean == pytest.approx(np.mean(np.log([3, 16 / 3, 4])))
    assert "relu 3, tanh 12" in result.notes[0] and "seed 1 tanh" in result.notes[1]
    old = {"epochs_to_target": {"relu": 10, "tanh": None}, "speedup": None, "curves": [{"train_error": [0.5] * 15}]}
    single = {r.claim.key: r for r in evaluate_claims([run("baseline", 0)], old)}["relu_figure1"]
    assert single.verdict == "inconclusive (1 seed)" and single.effect_text() == ">= 1.50x after 15 epochs"


def per_image_table(fixed: int, broken: int, images: int = 1000, offset: int = 0) -> dict[str, np.ndarray]:
    """70% right at the centre crop; 10-crop fixes `fixed` wrong images and breaks `broken` right ones."""
    centre = (np.arange(images) % 10 < 7).astype(int)
    ten = centre.copy()
    wrong, right = np.flatnonzero(centre == 0), np.flatnonzero(centre == 1)
    ten[wrong[offset : offset + fixed]] = 1
    ten[right[offset : offset + broken]] = 0
    return {"index": np.arange(images), "label": np.arange(images) % 10, "top1_correct": centre,
            "ten_crop_top1_correct": ten}  # fmt: skip


def test_bootstrap_over_images_pooled_over_seeds():
    tables = [per_image_table(60, 20), per_image_table(50, 10, offset=5)]
    differences = np.stack([t["ten_crop_top1_correct"] - t["top1_correct"] for t in tables])
    estimate = bootstrap_images(differences)
    pooled = differences.mean(axis=0)
    assert estimate.mean == pytest.approx(0.04) and estimate.method == "bootstrap"
    normal_half = 1.96 * pooled.std() / math.sqrt(len(pooled))
    assert estimate.low == pytest.approx(0.04 - normal_half, abs=0.003)
    assert estimate.high == pytest.approx(0.04 + normal_half, abs=0.003)
    assert estimate.p_value < 0.01 and estimate.sd == pytest.approx(0.0)  # both seeds gain exactly 4 points
    assert bootstrap_images(differences) == estimate  # seeded
    runs = [run("baseline", s, per_image=table) for s, table in enumerate(tables)]
    claim = {r.claim.key: r for r in evaluate_claims(runs)}["ten_crop_top1"]
    assert claim.estimate == estimate and claim.verdict == "reproduced" and "bootstrapped" in claim.how
    balanced = [per_image_table(30, 30), per_image_table(20, 20, offset=3)]
    runs = [run("baseline", s, per_image=table) for s, table in enumerate(balanced)]
    assert {r.claim.key: r for r in evaluate_claims(runs)}["ten_crop_top1"].verdict == "inconclusive"


def test_ten_crop_without_per_image_tables_falls_back_to_seeds():
    runs = [run("baseline", s, top1=0.30) for s in range(3)]
    for s, gain in enumerate([0.005, 0.010, 0.016]):
        runs[s].metrics["ten_crop_top1_error"] = 0.30 - gain
    claim = {r.claim.key: r for r in evaluate_claims(runs)}["ten_crop_top1"]
    assert claim.estimate.method == "t" and claim.estimate.mean == pytest.approx(0.0103333, rel=1e-4)
    assert "per-image tables missing" in claim.notes[0]


def test_seeds_needed_from_the_measured_sd():
    assert seeds_needed(0.019, 0.014) == 10  # 2.262 * 0.019 / sqrt(10) = 0.0136 < 0.014 <= n = 9's 0.0146
    for sd, effect in [(0.019, 0.014), (0.05, 0.004), (0.3, math.log(6))]:
        n = seeds_needed(sd, effect)
        assert stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) < effect
        assert stats.t.ppf(0.975, n - 2) * sd / math.sqrt(n - 1) >= effect or n == 2
    assert seeds_needed(0.0, 0.01) == 2 and seeds_needed(1.0, 0.001) is None
    claims = study({"no_lrn": [0.000, 0.030, 0.060]})
    assert claims["lrn_top1"].seeds_needed == seeds_needed(0.03, 0.014)


def test_per_image_tables_of_different_val_sets_are_not_paired():
    shuffled = per_image_table(50, 10)
    shuffled["label"] = shuffled["label"][::-1].copy()
    runs = [run("baseline", 0, per_image=per_image_table(60, 20)), run("baseline", 1, per_image=shuffled)]
    claim = {r.claim.key: r for r in evaluate_claims(runs)}["ten_crop_top1"]
    assert claim.notes == ["per-image tables do not pair"] and claim.estimate is None and claim.verdict == "not run"
