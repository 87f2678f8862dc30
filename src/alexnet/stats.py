"""Pure statistics for the claims: t-intervals, the pooled seed-variance model, bootstraps, Holm, power.

Numbers in, numbers out: no run, claim or file appears here. An effect is a mean over paired seeds, signed by
the caller so that positive is the paper's side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats

CONFIDENCE = 0.95
POWER = 0.80  # power targets: the seeds for 80% power at the paper's effect
SD_UPPER_CONFIDENCE = 0.80  # and with the sd at its upper 80% confidence bound
POOLING_ALPHA = 0.05  # Brown-Forsythe: below this the seed variances differ and pooling is refused
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
MAX_SEEDS = 1000  # the power search gives up here


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, df))


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its t-interval: mean_low - t*se .. mean_high + t*se.

    `mean_low` / `mean_high` differ from `mean` only for censored runs: a run that never reached its target
    enters at its bound, so the mean is a bound too (`censored` "lower": the true mean is at least mean_low,
    mean_high = +inf; "upper" the mirror; "both": no side). `se` is None when there is no interval: one seed,
    or seeds without spread, which are never decisive.
    """

    mean: float
    seeds: int
    se: float | None = None
    df: int | None = None
    sd: float | None = None  # one seed's sd of the paired difference: the power calculation's input
    method: str = "paired t"  # paired t | pooled t | interval-censored t
    censored: str | None = None
    mean_low: float | None = None  # None: equal to mean
    mean_high: float | None = None
    no_interval: str | None = None  # why se is None: "1 seed" | "no spread"

    @property
    def low(self) -> float | None:
        base = self.mean if self.mean_low is None else self.mean_low
        return None if self.se is None else base - t_quantile(self.df) * self.se

    @property
    def high(self) -> float | None:
        base = self.mean if self.mean_high is None else self.mean_high
        return None if self.se is None else base + t_quantile(self.df) * self.se

    @property
    def half_width(self) -> float | None:
        return None if self.se is None else t_quantile(self.df) * self.se

    def p_value(self, null: float = 0.0, at_least: bool = False) -> float | None:
        """Two-sided p against `null`, from the end of [mean_low, mean_high] nearest it (1 when it lies inside).
        `at_least`: the null is a lower bound ("over 1%"), so only a mean below it counts against it."""
        if self.se is None:
            return None
        low = self.mean if self.mean_low is None else self.mean_low
        high = self.mean if self.mean_high is None else self.mean_high
        if low > null and not at_least:
            distance = low - null
        elif high < null:
            distance = null - high
        else:
            return 1.0
        return float(2 * stats.t.sf(distance / self.se, self.df))


def t_interval(values: Sequence[float | None]) -> Estimate | None:
    """Mean of the per-seed paired differences with its t-interval (df = seeds - 1). No spread: no interval."""
    values = [float(value) for value in values if value is not None and math.isfinite(value)]
    if not values:
        return None
    mean, count = float(np.mean(values)), len(values)
    if count < 2:
        return Estimate(mean, 1, no_interval="1 seed")
    sd = float(np.std(values, ddof=1))
    if sd == 0.0:
        return Estimate(mean, count, sd=0.0, df=count - 1, no_interval="no spread")
    return Estimate(mean, count, sd / math.sqrt(count), count - 1, sd)


def interval_censored_t(lows: Sequence[float], highs: Sequence[float]) -> Estimate | None:
    """Per-seed values known only as ranges [low, high] (an epoch count known to +-1 epoch; a run that never
    reached its target is known only from one side: high = +inf, or low = -inf).

    A finite range counts at its midpoint, with a uniform error over its width added to the seed variance
    (width^2 / 12), so tied counts still leave spread. A half-open range counts at its finite end and makes the
    mean a bound: the interval is open on that side.
    """
    if not lows:
        return None
    lows, highs = np.asarray(lows, float), np.asarray(highs, float)
    finite = np.isfinite(lows) & np.isfinite(highs)
    points = np.where(finite, (lows + highs) / 2, np.where(np.isfinite(lows), lows, highs))
    rounding = np.where(finite, (highs - lows) ** 2 / 12, 0.0)
    count, mean = len(points), float(points.mean())
    sides = {"lower" if np.isfinite(low) else "upper" for low, ok in zip(lows, finite, strict=True) if not ok}
    censored = None if not sides else (sides.pop() if len(sides) == 1 else "both")
    mean_low = -math.inf if censored in ("upper", "both") else None
    mean_high = math.inf if censored in ("lower", "both") else None
    method = "interval-censored t"
    if count < 2:
        return Estimate(mean, 1, method=method, censored=censored, no_interval="1 seed")
    sd = math.sqrt(float(np.var(points, ddof=1)) + float(rounding.mean()))
    if sd == 0.0:
        return Estimate(mean, count, None, count - 1, 0.0, method, censored, no_interval="no spread")
    return Estimate(mean, count, sd / math.sqrt(count), count - 1, sd, method, censored, mean_low, mean_high)


# -- the pooled seed-variance model -------------------------------------------------------------------------
@dataclass(frozen=True)
class PooledModel:
    """Seeds are blocks and variants treatments: y[v, s] = mu + variant_v + seed_s + e, one residual variance
    over every variant x seed, df = (V - 1)(S - 1). Each "variant minus baseline" contrast gets its interval
    from it. `homogeneity_p` is Brown-Forsythe's test of equal spread of the per-variant paired differences."""

    residual_sd: float
    df: int
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    means: dict[str, float]
    homogeneity_p: float | None

    @property
    def pooling_holds(self) -> bool:
        return self.homogeneity_p is None or not self.homogeneity_p < POOLING_ALPHA

    def contrast(self, variant: str, baseline: str) -> Estimate:
        count = len(self.seeds)
        mean = self.means[variant] - self.means[baseline]
        sd = math.sqrt(2.0) * self.residual_sd  # one seed's paired difference
        if sd == 0.0:
            return Estimate(mean, count, None, self.df, 0.0, "pooled t", no_interval="no spread")
        return Estimate(mean, count, sd / math.sqrt(count), self.df, sd, "pooled t")


def pooled_model(table: dict[str, dict[int, float]], baseline: str) -> PooledModel | None:
    """The two-way model (no interaction) over the variants that ran every seed the baseline ran.

    `table[variant][seed]` is one run's value. None when fewer than 2 such variants or 2 seeds.
    """
    seeds = tuple(sorted(seed for seed, value in table.get(baseline, {}).items() if _finite(value)))
    variants = tuple(name for name, row in table.items() if all(_finite(row.get(seed)) for seed in seeds))
    if len(seeds) < 2 or len(variants) < 2:
        return None
    values = np.array([[table[name][seed] for seed in seeds] for name in variants], dtype=np.float64)
    residuals = values - values.mean(1, keepdims=True) - values.mean(0, keepdims=True) + values.mean()
    df = (len(variants) - 1) * (len(seeds) - 1)
    residual_sd = math.sqrt(float((residuals**2).sum()) / df)
    means = {name: float(row.mean()) for name, row in zip(variants, values, strict=True)}
    base = values[variants.index(baseline)]
    differences = [row - base for name, row in zip(variants, values, strict=True) if name != baseline]
    return PooledModel(residual_sd, df, variants, seeds, means, brown_forsythe(differences))


def brown_forsythe(groups: list[np.ndarray]) -> float | None:
    """p of Brown-Forsythe's test (Levene's, centred on medians) that the groups share one spread.
    None when it cannot be computed: fewer than two groups, or no spread within any group."""
    if len(groups) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):  # no spread in any group: 0 / 0, reported as None
        p_value = float(stats.levene(*groups, center="median").pvalue)
    return None if math.isnan(p_value) else p_value


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


# -- bootstrap, Holm, power ----------------------------------------------------------------------------------
def two_level_bootstrap(
    differences: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float, float]:
    """Mean and percentile interval of per-image paired differences (seeds x images): each resample draws
    seeds with replacement, then images with replacement within each drawn seed. Seed spread widens it."""
    differences = np.asarray(differences, dtype=np.float64)
    seeds, images = differences.shape
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 50):
        size = min(50, resamples - start)
        drawn_seeds = rng.integers(0, seeds, size=(size, seeds, 1))
        drawn_images = rng.integers(0, images, size=(size, seeds, images))
        means[start : start + size] = differences[drawn_seeds, drawn_images].mean(axis=(1, 2))
    low, high = np.percentile(means, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    return float(differences.mean()), float(low), float(high)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (monotone in the sorted order, capped at 1)."""
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(sorted(range(len(p_values)), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def power(effect: float, sd: float, seeds: int, df: int) -> float:
    """Power of the two-sided t-test at CONFIDENCE to detect `effect`, from the noncentral t:
    noncentrality effect / (sd / sqrt(seeds)), with `sd` one seed's sd of the paired difference."""
    critical = t_quantile(df)
    shift = abs(effect) * math.sqrt(seeds) / sd
    value = float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))
    if math.isnan(value):  # scipy's nct can fail far in the tail: the same probability by integration
        value = power_by_integral(critical, shift, df)
    return min(value, 1.0)


def power_by_integral(critical: float, shift: float, df: int) -> float:
    """P(|T| > critical) for T noncentral t(df, shift), integrating the normal over the chi-square."""

    def given(chi_square: float) -> float:
        scale = critical * math.sqrt(chi_square / df)
        return (stats.norm.sf(scale - shift) + stats.norm.cdf(-scale - shift)) * stats.chi2.pdf(chi_square, df)

    return float(integrate.quad(given, 0, math.inf)[0])


def seeds_for_power(
    effect: float, sd: float | None, df_at: Callable[[int], int] = lambda seeds: seeds - 1, target: float = POWER
) -> int | None:
    """Fewest seeds (>= 2) with `target` power at `effect`; `df_at(seeds)` is the residual df the design would
    have (seeds - 1 for one paired claim, (V - 1)(seeds - 1) pooled over V variants). None: more than MAX_SEEDS."""
    if sd is None or not effect:
        return None
    if sd == 0.0:
        return 2
    for count in range(2, MAX_SEEDS + 1):
        if power(effect, sd, count, df_at(count)) >= target:
            return count
    return None


def sd_upper_bound(sd: float, df: int, confidence: float = SD_UPPER_CONFIDENCE) -> float:
    """One-sided upper confidence bound of a normal sd estimated with `df` degrees of freedom (chi-square)."""
    return sd * math.sqrt(df / float(stats.chi2.ppf(1 - confidence, df)))
