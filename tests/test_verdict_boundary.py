"""The verdict rule at the edge of its interval: a 95% interval that touches zero decides nothing.

`claims.verdict` says "reproduced" only when the whole interval is on the paper's side (low > 0), and "not
reproduced" only when it is all on the other side (high < 0). Written against the public `verdict` and
`Estimate` (and `t_interval`, which builds them) so it survives a rewrite of the rest of claims.py.
"""

from __future__ import annotations

import math

import pytest

from alexnet.claims import Estimate, t_interval, verdict

TINY = math.ulp(0.0)  # the smallest positive float


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.0, 0.2, "inconclusive"),  # touches zero from above: zero is in the closed interval
        (TINY, 0.2, "reproduced"),  # one float above zero
        (-0.2, 0.0, "inconclusive"),  # touches zero from below
        (-0.2, -TINY, "not reproduced"),
        (0.0, 0.0, "inconclusive"),  # a zero-width interval at zero: no effect
        (-TINY, TINY, "inconclusive"),
    ],
)
def test_an_interval_touching_zero_is_inconclusive(low, high, expected):
    estimate = Estimate(mean=(low + high) / 2, seeds=3, low=low, high=high)
    assert verdict(estimate) == expected


def test_a_censored_interval_touching_zero_says_censored():
    assert verdict(Estimate(0.1, 3, 0.0, math.inf, censored="lower")) == "inconclusive (censored)"
    assert verdict(Estimate(0.1, 3, TINY, math.inf, censored="lower")) == "reproduced"


def test_one_seed_is_never_decisive_however_large_the_effect():
    assert verdict(Estimate(0.5, 1)) == "inconclusive (1 seed)"
    assert verdict(Estimate(0.5, 1, 0.4, 0.6)) == "inconclusive (1 seed)"
    assert verdict(None) == "not run"


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
    assert (estimate.p_value < 0.05) == (expected == "reproduced"), "the interval and the t-test agree"
    assert verdict(estimate) == expected
