"""claims.py on hand-made runs: the direction and magnitude rules, pooling and its fallback, ties, censoring,
10-crop from the seed level with the paper's Sec. 6 values, Holm, power, and the claims' variants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from conftest import REPO
from scipy import stats as scipy_stats

from alexnet import stats
from alexnet.claims import direction, evaluate_claims, log_ratio_estimate, magnitude
from alexnet.paper_claims import CLAIMS
from alexnet.runs import RunResult
from alexnet.stats import Estimate


def history(reach_at: int | None, epochs: int = 16, gap: float = 0.05):
    return [{"epoch": e, "top1_error": 0.1, "val_top1_error": 0.4, "seconds": 1.0,
             "train_eval_top1_error": 0.2 if reach_at and e >= reach_at else (0.4 - gap if e == epochs else 0.6)}
            for e in range(1, epochs + 1)]  # fmt: skip


def run(variant, seed, top1=0.3, top5=0.05, classes=10, reach_at=3, metrics=None):
    values = {"top1_error": top1, "top5_error": top5, "classes": classes, **(metrics or {})}
    return RunResult(f"{variant}-s{seed}", variant, seed, values, history(reach_at))


def study(effects: dict[str, list[float]], classes=10) -> dict:
    """baseline plus one variant per entry, whose seed s is `effects[variant][s]` worse in top-1 (and top-5)."""
    seeds = range(len(next(iter(effects.values()))))
    runs = [run("baseline", s, 0.30 + 0.02 * s, classes=classes) for s in seeds]
    for variant, deltas in effects.items():
        runs += [run(variant, s, 0.30 + 0.02 * s + deltas[s], 0.05 + deltas[s], classes=classes) for s in seeds]
    return {result.claim.key: result for result in evaluate_claims(runs)}


def t_estimate(mean: float, half: float) -> Estimate:
    return Estimate(mean, 3, half / stats.t_quantile(2), 2, 0.01)


@pytest.mark.parametrize(
    ("estimate", "expected"),
    [
        (t_estimate(0.02, 0.015), "reproduced"),
        (t_estimate(-0.02, 0.015), "opposite"),
        (t_estimate(0.01, 0.014), "inconclusive"),
        (Estimate(0.5, 1, no_interval="1 seed"), "inconclusive (1 seed)"),
        (Estimate(0.5, 3, df=2, sd=0.0, no_interval="no spread"), "inconclusive (no spread)"),
        (None, "not run"),
    ],
)
def test_direction_rule(estimate, expected):
    assert direction(estimate) == expected


def test_magnitude_on_the_three_cases_and_without_a_number():
    lrn = next(claim for claim in CLAIMS if claim.key == "lrn_top1")  # the paper: 1.4 pt
    assert magnitude(t_estimate(0.015, 0.005), lrn) == "consistent"  # [1.0, 2.0] holds 1.4
    assert magnitude(t_estimate(0.005, 0.004), lrn) == "smaller than the paper"  # [0.1, 0.9]
    assert magnitude(t_estimate(0.030, 0.005), lrn) == "larger than the paper"  # [2.5, 3.5]
    pca = next(claim for claim in CLAIMS if claim.key == "pca_lighting_top1")  # "over 1%": never "larger"
    assert magnitude(t_estimate(0.030, 0.005), pca) == "consistent"
    gap = next(claim for claim in CLAIMS if claim.key == "dropout_gap")  # "substantial": no number
    assert magnitude(t_estimate(0.030, 0.005), gap) == "not tested (no number)"


def test_magnitude_verdicts_from_runs_and_their_holm():
    claims = study({"no_lrn": [0.013, 0.015, 0.014], "no_overlap_pool": [0.020, 0.022, 0.021],
                    "one_gpu": [0.004, 0.006, 0.005]})  # fmt: skip
    lrn, pool, gpu = claims["lrn_top1"], claims["overlap_pool_top1"], claims["two_gpus_top1"]
    assert (lrn.magnitude, pool.magnitude, gpu.magnitude) == (
        "consistent", "larger than the paper", "smaller than the paper")  # fmt: skip
    assert all(result.direction == "reproduced" for result in (lrn, pool, gpu))
    assert pool.magnitude_p == pytest.approx(pool.estimate.p_value(0.004)) and pool.magnitude_holm_survives
    assert lrn.magnitude_holm_survives is False  # consistent: nothing to survive


def test_one_seed_is_inconclusive_however_large_the_effect():
    claims = study({"no_lrn": [0.10], "no_pca_lighting": [-0.10]})
    assert claims["lrn_top1"].direction == "inconclusive (1 seed)"
    assert claims["pca_lighting_top1"].direction == "inconclusive (1 seed)" and not claims["lrn_top1"].tested


def test_two_tied_seeds_are_never_decisive():
    # error claim: both seeds 2 points worse, no spread at all: no interval, p = None, never counted decisive
    claims = study({"no_lrn": [0.02, 0.02]})
    lrn = claims["lrn_top1"]
    assert lrn.direction == "inconclusive (no spread)" and lrn.estimate.low is None and lrn.holm_survives is False
    # Figure 1's seeds tie at tanh 8 / relu 9 epochs: counts +-1 epoch leave spread, the 6x claim undecided
    tied = {"seeds": [{"seed": s, "epochs_to_target": {"relu": 9, "tanh": 8}, "epochs": 15} for s in (1, 2)]}
    figure1 = {r.claim.key: r for r in evaluate_claims([run("baseline", 0)], tied)}["relu_figure1_glorot"]
    assert figure1.estimate.se > 0 and figure1.direction == "inconclusive"
    # a big tied ratio (16 vs 4 epochs, twice) is still not certain: the interval stays finite
    estimate, _ = log_ratio_estimate([(16, 20, 4, 20), (16, 20, 4, 20)])
    assert estimate.se > 0 and estimate.p_value() > 0.0


def test_pooled_contrast_by_default_and_per_claim_when_brown_forsythe_rejects():
    calm = {"no_lrn": [0.020, 0.021, 0.019, 0.020, 0.021, 0.019, 0.020, 0.020],
            "no_overlap_pool": [0.010, 0.011, 0.009, 0.010, 0.011, 0.009, 0.010, 0.010]}  # fmt: skip
    pooled = study(calm)
    assert pooled["lrn_top1"].estimate.method == "pooled t" and pooled["lrn_top1"].estimate.df == 2 * 7
    assert "pooled seed variance over 3 variants x 8 seeds, df 14" in pooled["lrn_top1"].how
    wild = study({**calm, "no_overlap_pool": [0.06, -0.04, 0.05, -0.03, 0.08, -0.05, 0.02, -0.01]})
    lrn = wild["lrn_top1"]
    assert lrn.estimate.method == "paired t" and lrn.estimate.df == 7 and "Brown-Forsythe rejects" in lrn.how
    assert lrn.estimate.se == pytest.approx(np.std(calm["no_lrn"], ddof=1) / math.sqrt(8))


def test_ten_crop_from_the_seed_level_with_the_papers_values():
    # the study's per-seed gains: 1.61, 1.05, 2.17 points; the seed t-interval is [0.21, 3.00], p = 0.038
    runs = [run("baseline", s, metrics={"ten_crop_top1_error": 0.30 - gain}) for s, gain in
            enumerate([0.0161, 0.0105, 0.0217])]  # fmt: skip
    claim = {r.claim.key: r for r in evaluate_claims(runs)}["ten_crop_top1"]
    assert (claim.estimate.low * 100, claim.estimate.high * 100) == pytest.approx((0.21, 3.00), abs=0.01)
    assert claim.p_value == pytest.approx(scipy_stats.ttest_1samp([0.0161, 0.0105, 0.0217], 0).pvalue)
    assert claim.p_value == pytest.approx(0.038, abs=0.001)
    assert claim.claim.paper_effect == 0.015 and claim.magnitude == "consistent"  # Sec. 6, fn.: 39.0 -> 37.5
    assert next(c for c in CLAIMS if c.key == "ten_crop_top5").paper_effect == 0.013  # 18.3 -> 17.0
    # power at 1.5 pt and the seeds for 80%, both from the same seed sd (no "underpowered: no" beside "4 seeds")
    sd = np.std([0.0161, 0.0105, 0.0217], ddof=1)
    assert claim.power == pytest.approx(stats.power(0.015, sd, 3, 2))
    assert claim.seeds_for_power() == stats.seeds_for_power(0.015, sd)


def test_a_nominally_reproduced_claim_can_fail_holm():
    claims = study({"no_lrn": [0.010, 0.020, 0.015], "no_overlap_pool": [0.030, 0.032, 0.031],
                    "no_pca_lighting": [0.01, -0.01, 0.0]})  # fmt: skip
    lrn, pool, pca = claims["lrn_top1"], claims["overlap_pool_top1"], claims["pca_lighting_top1"]
    assert [result.tested for result in claims.values()].count(True) == 3  # gap, 10-crop, Figure 1: not run
    assert lrn.direction == "reproduced" and 0.02 < lrn.p_value < 0.05
    assert pool.holm_p == pytest.approx(3 * pool.p_value) and pool.holm_survives  # smallest p: times 3
    assert lrn.holm_p == pytest.approx(2 * lrn.p_value) and lrn.holm_p > 0.05 and lrn.holm_survives is False
    assert pca.direction == "inconclusive" and pca.holm_p == 1.0 and pca.holm_survives is False


def test_top5_claims_need_100_classes():
    few = study({"no_lrn": [0.01, 0.02]}, classes=10)
    assert few["lrn_top5"].direction == "not testable (10 classes)" and not few["lrn_top5"].tested
    assert few["ten_crop_top5"].direction == "not testable (10 classes)"
    many = study({"no_lrn": [0.01, 0.02]}, classes=100)
    assert many["lrn_top5"].direction == "inconclusive" and many["lrn_top5"].tested


def test_censored_ratio_stays_a_bound():
    # with dropout (baseline) never reaches 25% in 16 epochs; without it reaches at 10, 11, 12
    runs = [run("baseline", s, reach_at=None) for s in range(3)]
    runs += [run("no_dropout", s, reach_at=10 + s) for s in range(3)]
    iterations = {r.claim.key: r for r in evaluate_claims(runs)}["dropout_iterations"]
    lows = [math.log(16 / (f + 1)) for f in (10, 11, 12)]  # fast counts +1 epoch: the smallest ratio
    estimate = iterations.estimate
    assert estimate.censored == "lower" and estimate.high == math.inf
    assert estimate.mean == pytest.approx(np.mean(lows))
    assert estimate.low == pytest.approx(np.mean(lows) - stats.t_quantile(2) * np.std(lows, ddof=1) / math.sqrt(3))
    assert iterations.direction == "reproduced" and iterations.magnitude == "consistent"  # 2x inside [low, inf)
    assert iterations.seeds_for_power() is None and any("baseline-s0 (16)" in note for note in iterations.notes)


def test_censored_bound_never_decides_against_its_direction():
    # the faster run never reaches: ratio <= slow / epochs, an upper bound: never "reproduced"
    estimate, neither = log_ratio_estimate([(2, 16, None, 16), (3, 16, None, 16), (2, 16, None, 16)])
    assert estimate.censored == "upper" and estimate.low == -math.inf and neither == 0
    assert direction(estimate) == "opposite"
    above, _ = log_ratio_estimate([(12, 16, None, 4), (10, 16, None, 4), (11, 16, None, 4)])  # <= 3x, 2.5x, 2.75x
    assert above.mean > 0 and direction(above) == "inconclusive (censored)" and above.p_value() == 1.0
    both, _ = log_ratio_estimate([(None, 16, 2, 16), (2, 16, None, 16)])
    assert both.censored == "both" and direction(both) == "inconclusive (censored)" and both.p_value() == 1.0
    nothing, neither = log_ratio_estimate([(None, 16, None, 16)])
    assert nothing is None and neither == 1


def test_figure1_against_six_times_is_smaller_than_the_paper():
    seeds = [{"seed": s, "epochs_to_target": {"relu": relu, "tanh": tanh}, "epochs": 15}
             for s, (relu, tanh) in enumerate([(10, 7), (9, 8), (9, 8)])]  # fmt: skip
    figure1 = {"seeds": seeds, "median_epochs_to_target": {"relu": 9, "tanh": 8}, "data": "prepared"}
    result = {r.claim.key: r for r in evaluate_claims([run("baseline", 0)], figure1)}["relu_figure1_glorot"]
    assert result.direction == "inconclusive" and result.magnitude == "smaller than the paper"
    assert result.estimate.high < math.log(6) and result.magnitude_p < 0.01
    assert "relu 9, tanh 8" in result.notes[0]
    with pytest.raises(ValueError, match="figure1.json: no per-seed results"):  # an older single-seed file
        evaluate_claims([run("baseline", 0)], {"epochs_to_target": {"relu": 10, "tanh": 7}})


def test_pooled_power_keeps_the_design_and_gives_the_sd_upper_bound_count():
    claims = study({"no_lrn": [0.000, 0.030, 0.020], "no_overlap_pool": [0.01, 0.0, 0.02]})
    lrn = claims["lrn_top1"]
    sd, df = lrn.estimate.sd, lrn.estimate.df
    assert df == 4 and lrn.seeds_for_power() == stats.seeds_for_power(0.014, sd, lambda n: 2 * (n - 1))
    upper = stats.sd_upper_bound(sd, df)
    assert lrn.seeds_for_power(upper_sd=True) == stats.seeds_for_power(0.014, upper, lambda n: 2 * (n - 1))
    assert lrn.seeds_for_power(upper_sd=True) > lrn.seeds_for_power()


def test_every_claims_variant_is_an_ablation_variant_in_params():
    variants = yaml.safe_load((REPO / "params.yaml").read_text())["ablations"]["variants"]
    named = {name for claim in CLAIMS if claim.kind not in ("figure1",) for name in (claim.variant, claim.against)}
    missing = sorted(named - set(variants))
    assert not missing, f"claims name variants missing from params.yaml ablations.variants: {missing}"
