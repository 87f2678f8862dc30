"""stats.py on hand-made numbers: t-intervals, the pooled two-way model, Brown-Forsythe, interval censoring,
the two-level bootstrap, Holm and noncentral-t power, each against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from alexnet import stats


@pytest.mark.parametrize("df", [1, 2, 12])
def test_t_interval_equals_scipys_at_any_df(df):
    values = list(np.random.default_rng(df).normal(0.01, 0.02, df + 1))
    estimate = stats.t_interval(values)
    low, high = scipy_stats.t.interval(0.95, df, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-12)
    assert estimate.p_value() == pytest.approx(scipy_stats.ttest_1samp(values, 0.0).pvalue, rel=1e-9)


def test_zero_spread_gives_no_interval_and_no_p_value():
    tied = stats.t_interval([0.02, 0.02, 0.02])
    assert tied.no_interval == "no spread" and tied.low is None and tied.p_value() is None
    assert stats.t_interval([0.5]).no_interval == "1 seed"


def two_way_anova_contrast(values: np.ndarray, variant: int) -> tuple[float, float, float, int]:
    """Textbook least squares: y = intercept + variant dummies + seed dummies (variant 0 and seed 0 the
    references), residual variance SSE / (n - p), the coefficient of `variant` and its se from sigma^2 (X'X)^-1."""
    variants, seeds = values.shape
    rows = []
    for v in range(variants):
        for s in range(seeds):
            rows.append([1.0] + [float(v == k) for k in range(1, variants)] + [float(s == k) for k in range(1, seeds)])
    design, y = np.array(rows), values.reshape(-1)
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = len(y) - design.shape[1]
    sigma2 = float(np.sum((y - design @ coefficients) ** 2)) / df
    se = math.sqrt(sigma2 * np.linalg.inv(design.T @ design)[variant, variant])
    return float(coefficients[variant]), se, math.sqrt(sigma2), df


def test_pooled_interval_equals_the_textbook_two_way_anova_contrast():
    rng = np.random.default_rng(3)
    values = 0.30 + rng.normal(0, 0.01, (4, 5)) + np.array([0, 0.01, 0.02, -0.005])[:, None] + rng.normal(0, 0.02, 5)
    table = {name: dict(enumerate(row)) for name, row in zip(["baseline", "a", "b", "c"], values, strict=True)}
    model = stats.pooled_model(table, "baseline")
    assert model.df == 3 * 4 and model.variants == ("baseline", "a", "b", "c")
    for index, name in enumerate(["a", "b", "c"], start=1):
        coefficient, se, sigma, df = two_way_anova_contrast(values, index)
        estimate = model.contrast(name, "baseline")
        assert model.residual_sd == pytest.approx(sigma, rel=1e-10) and estimate.df == df == 12
        assert estimate.mean == pytest.approx(coefficient, rel=1e-10) and estimate.se == pytest.approx(se, rel=1e-10)
        half = scipy_stats.t.ppf(0.975, df) * se
        assert (estimate.low, estimate.high) == pytest.approx((coefficient - half, coefficient + half), rel=1e-10)
        assert estimate.p_value() == pytest.approx(2 * scipy_stats.t.sf(abs(coefficient) / se, df), rel=1e-8)


def test_pooled_model_takes_the_variants_that_ran_every_seed():
    table = {"baseline": {0: 0.3, 1: 0.31, 2: 0.32}, "a": {0: 0.33, 1: 0.35, 2: 0.34}, "partial": {0: 0.4}}
    model = stats.pooled_model(table, "baseline")
    assert model.variants == ("baseline", "a") and model.df == 2
    # with two variants the pooled contrast is the paired t over seeds
    paired = stats.t_interval([0.03, 0.04, 0.02])
    assert model.contrast("a", "baseline").se == pytest.approx(paired.se)
    assert stats.pooled_model({"baseline": {0: 0.3}, "a": {0: 0.4}}, "baseline") is None  # one seed


def test_brown_forsythe_refuses_pooling_when_spreads_differ():
    rng = np.random.default_rng(0)
    seeds = 8
    base = rng.normal(0.30, 0.01, seeds)
    calm = base + 0.01 + rng.normal(0, 0.001, seeds)
    wild = base + 0.01 + rng.normal(0, 0.05, seeds)
    table = {"baseline": dict(enumerate(base)), "calm": dict(enumerate(calm)), "wild": dict(enumerate(wild))}
    model = stats.pooled_model(table, "baseline")
    expected = scipy_stats.levene(calm - base, wild - base, center="median").pvalue
    assert model.homogeneity_p == pytest.approx(expected) and model.homogeneity_p < 0.05
    assert not model.pooling_holds
    similar = base + 0.02 + rng.normal(0, 0.001, seeds)  # as calm as `calm`
    model = stats.pooled_model({**table, "wild": dict(enumerate(similar))}, "baseline")
    assert model.homogeneity_p > 0.05 and model.pooling_holds


def test_interval_censored_counts_keep_spread_when_tied():
    # two seeds, both 9 vs 8 epochs, each count +-1: midpoint log ratio, spread from the ranges' widths alone
    low, high = math.log(8 / 9), math.log(10 / 7)
    estimate = stats.interval_censored_t([low, low], [high, high])
    assert estimate.sd == pytest.approx((high - low) / math.sqrt(12)) and estimate.se > 0
    assert estimate.mean == pytest.approx((low + high) / 2) and estimate.low < 0 < estimate.high
    bound = stats.interval_censored_t([0.3, 0.4, 0.5], [math.inf, math.inf, math.inf])
    assert bound.censored == "lower" and bound.high == math.inf and bound.mean == pytest.approx(0.4)
    assert bound.low == pytest.approx(0.4 - scipy_stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3))
    assert bound.p_value(1.0) == 1.0  # a lower bound never argues that the truth is smaller


def test_two_level_bootstrap_widens_with_seed_spread():
    rng = np.random.default_rng(1)
    images = (rng.random((3, 2000)) < 0.1).astype(float) - (rng.random((3, 2000)) < 0.05)
    tight = images - images.mean(axis=1, keepdims=True) + images.mean()  # every seed gains the same
    spread = tight + np.array([[-0.03], [0.0], [0.03]])  # seeds gain 3 points more or less
    mean_tight, low_tight, high_tight = stats.two_level_bootstrap(tight)
    mean_spread, low_spread, high_spread = stats.two_level_bootstrap(spread)
    assert mean_tight == pytest.approx(mean_spread)
    image_only = 1.96 * tight.mean(axis=0).std() / math.sqrt(2000) * math.sqrt(3)  # roughly: 3 seeds' images
    assert high_tight - low_tight < 4 * image_only
    assert (high_spread - low_spread) > 2 * (high_tight - low_tight)
    assert stats.two_level_bootstrap(spread) == (mean_spread, low_spread, high_spread)  # seeded


def test_holm_adjusts_step_down():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_seeds_for_80_percent_power_match_the_textbook_values():
    # a paired (one-sample) t-test, two-sided 5%: d = 1 needs 10, d = 0.5 needs 34 (Cohen; G*Power)
    assert stats.seeds_for_power(1.0, 1.0) == 10 and stats.seeds_for_power(0.5, 1.0) == 34
    assert stats.power(0.5, 1.0, 34, 33) == pytest.approx(0.8078, abs=1e-3) and stats.power(0.5, 1.0, 33, 32) < 0.8
    # pooled over 6 variants the residual df is 5 (n - 1): fewer seeds for the same effect
    assert stats.seeds_for_power(1.0, 1.0, lambda seeds: 5 * (seeds - 1)) == 10 - 1
    assert stats.seeds_for_power(1e-6, 1.0) is None


def test_power_where_scipys_noncentral_t_fails_comes_from_the_same_integral():
    critical = scipy_stats.t.ppf(0.975, 3)
    direct = scipy_stats.nct.sf(critical, 3, 3) + scipy_stats.nct.cdf(-critical, 3, 3)
    assert stats.power_by_integral(critical, 3, 3) == pytest.approx(direct, rel=1e-8)
    assert 0.3 < stats.power(math.log(6), 0.3, 2, 1) < 0.7  # df 1, noncentrality 8.4: scipy's nct gives nan


def test_sd_upper_bound_covers_the_true_sd_80_percent_of_the_time():
    samples = np.random.default_rng(2).normal(0.0, 1.0, (20000, 3))
    bounds = np.array([stats.sd_upper_bound(sd, 2) for sd in samples.std(axis=1, ddof=1)])
    assert np.mean(bounds >= 1.0) == pytest.approx(0.80, abs=0.01)
    assert stats.sd_upper_bound(1.0, 2) == pytest.approx(math.sqrt(2 / scipy_stats.chi2.ppf(0.2, 2)))
