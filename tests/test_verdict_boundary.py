"""The direction rule at the edge of its interval: a 95% interval that touches zero decides nothing.

`claims.direction` says "reproduced" only when the whole interval is on the paper's side (low > 0), and
"opposite" only when it is all on the other side (high < 0).
"""

from __future__ import annotations

import math

import pytest

from alexnet.claims import direction
from alexnet.stats import Estimate, t_interval, t_quantile

SE, DF = 0.1, 2
HALF_WIDTH = t_quantile(DF) * SE  # mean = HALF_WIDTH puts the interval's low end exactly at zero


def _interval(mean: float, **censoring) -> Estimate:
    return Estimate(mean=mean, seeds=DF + 1, se=SE, df=DF, **censoring)


@pytest.mark.parametrize(
    ("mean", "edge", "expected"),
    [
        (HALF_WIDTH, "low", "inconclusive"),  # touches zero from above: zero is in the closed interval
        (math.nextafter(HALF_WIDTH, math.inf), "low", "reproduced"),  # one float above zero
        (-HALF_WIDTH, "high", "inconclusive"),  # touches zero from below
        (math.nextafter(-HALF_WIDTH, -math.inf), "high", "opposite"),
    ],
)
def test_an_interval_touching_zero_is_inconclusive(mean, edge, expected):
    estimate = _interval(mean)
    end = estimate.low if edge == "low" else estimate.high
    assert end == 0.0 if expected == "inconclusive" else end != 0.0
    assert direction(estimate) == expected


def test_a_censored_interval_touching_zero_says_censored():
    assert direction(_interval(HALF_WIDTH, censored="lower", mean_high=math.inf)) == "inconclusive (censored)"
    assert direction(_interval(math.nextafter(HALF_WIDTH, math.inf), censored="lower")) == "reproduced"


def test_one_seed_or_tied_seeds_are_never_decisive_however_large_the_effect():
    assert direction(t_interval([0.5])) == "inconclusive (1 seed)"
    assert direction(t_interval([0.5, 0.5, 0.5])) == "inconclusive (no spread)"
    assert direction(None) == "not run"


def _seeds_with_lower_bound(target_low: float) -> list[float]:
    """Three per-seed effects whose t-interval's lower end is `target_low` (mean 0.1, sd chosen to fit)."""
    base = [0.0, 1.0, 2.0]  # sd 1, mean 1
    half_width_per_sd = t_interval(base).half_width  # t(0.975, 2) / sqrt(3)
    sd = (0.1 - target_low) / half_width_per_sd
    return [0.1 + sd * (value - 1.0) for value in base]


@pytest.mark.parametrize(("low", "expected"), [(0.001, "reproduced"), (-0.001, "inconclusive")])
def test_the_rule_on_t_intervals_just_either_side_of_zero(low, expected):
    estimate = t_interval(_seeds_with_lower_bound(low))
    assert estimate.low == pytest.approx(low, abs=1e-9)
    assert (estimate.p_value() < 0.05) == (expected == "reproduced"), "the interval and the t-test agree"
    assert direction(estimate) == expected
