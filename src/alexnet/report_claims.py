"""One claim as text and as data: its table cells, its ablations.json row, the MLflow verdict table and metrics."""

from __future__ import annotations

import math

from alexnet import stats
from alexnet.claims import ClaimResult
from alexnet.stats import Estimate


def shown(result: ClaimResult, value: float | None) -> float | None:
    """A claim's value in display units: error points, or the ratio itself."""
    if value is None or not math.isfinite(value):
        return None
    return math.exp(value) if result.claim.ratio else value * 100.0


def _bound(result: ClaimResult, value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else ("0x" if result.claim.ratio else "-inf")
    return f"{math.exp(value):.2f}x" if result.claim.ratio else f"{value * 100:+.2f}"


def effect_text(result: ClaimResult) -> str:
    """The effect and its 95% interval; a censored bound shows what the data support at 95%."""
    estimate = result.estimate
    if estimate is None:
        return "-"
    point = f"{math.exp(estimate.mean):.2f}x" if result.claim.ratio else f"{estimate.mean * 100:+.2f} pt"
    if estimate.censored in ("lower", "upper"):
        sign, end = (">=", estimate.low) if estimate.censored == "lower" else ("<=", estimate.high)
        if estimate.no_interval:
            return f"{sign} {point} after {result.epochs} epochs ({estimate.no_interval})"
        return f"{sign} {_bound(result, end)} at 95% (censored at {result.epochs} epochs)"
    if estimate.censored:
        point += " (censored both ways)"
    if estimate.no_interval:
        return f"{point} ({estimate.no_interval})"
    opening, closing = "(" if math.isinf(estimate.low) else "[", ")" if math.isinf(estimate.high) else "]"
    return f"{point} {opening}{_bound(result, estimate.low)}, {_bound(result, estimate.high)}{closing}"


def interval_text(estimate: Estimate | None) -> str:
    if estimate is None or estimate.df is None:
        return "-"
    return f"{estimate.method}, df {estimate.df}"


def power_text(result: ClaimResult) -> tuple[str, str]:
    """(power now, seeds for 80% power [with the sd's upper 80% bound])."""
    estimate = result.estimate
    if estimate is None or estimate.seeds < 2:
        return "-", "-"
    if estimate.censored:
        return "-", "train longer (censored)"
    if not estimate.sd:
        return "-", "- (no spread)"
    needed = [result.seeds_for_power(upper) for upper in (False, True)]
    needed_text = [f"> {stats.MAX_SEEDS}" if count is None else str(count) for count in needed]
    return f"{result.power:.0%}", f"{needed_text[0]} ({needed_text[1]})"


def holm_text(survives: bool | None, decided: bool) -> str:
    return "-" if survives is None or not decided else ("survives" if survives else "fails")


def claim_row(result: ClaimResult) -> dict:
    """One claim as data: ablations.json's row and the MLflow verdict table's source."""
    estimate, claim = result.estimate, result.claim
    power, needed = power_text(result)
    return {
        "key": claim.key, "claim": claim.name, "section": claim.section, "paper_text": claim.text,
        "paper_value": claim.paper_value, "paper_effect": shown(result, claim.paper_effect), "unit":
        "x" if claim.ratio else "pt", "effect": shown(result, estimate.mean) if estimate else None,
        "low": shown(result, estimate.low) if estimate else None,
        "high": shown(result, estimate.high) if estimate else None, "measured": effect_text(result),
        "seeds": estimate.seeds if estimate else 0, "interval": interval_text(estimate),
        "censored": estimate.censored if estimate else None, "direction": result.direction,
        "magnitude": result.magnitude, "p_value": result.p_value, "holm_p": result.holm_p,
        "holm_survives": result.holm_survives, "magnitude_p": result.magnitude_p,
        "magnitude_holm_p": result.magnitude_holm_p, "magnitude_holm_survives": result.magnitude_holm_survives,
        "sd": None if estimate is None or estimate.sd is None else (estimate.sd if claim.ratio else estimate.sd * 100),
        "power": result.power, "seeds_for_80_power": result.seeds_for_power(),
        "seeds_for_80_power_sd_upper": result.seeds_for_power(upper_sd=True), "power_text": power,
        "seeds_text": needed,
        "tested": result.tested, "extra": claim.extra, "how": result.how, "notes": result.notes,
    }  # fmt: skip


def claim_metrics(results: list[ClaimResult]) -> dict[str, float]:
    """claim.<key>.effect / .low / .high in display units (points, or the ratio): finite values only."""
    metrics = {}
    for result in results:
        if result.estimate is None:
            continue
        for name, value in (("effect", result.estimate.mean), ("low", result.estimate.low),
                            ("high", result.estimate.high)):  # fmt: skip
            if shown(result, value) is not None:
                metrics[f"claim.{result.claim.key}.{name}"] = shown(result, value)
    return metrics


VERDICT_COLUMNS = ("claim", "section", "paper_value", "measured", "unit", "effect", "low", "high", "seeds",
                   "direction", "magnitude", "holm_survives", "magnitude_holm_survives", "power",
                   "seeds_for_80_power", "seeds_for_80_power_sd_upper", "interval", "how")  # fmt: skip


def verdict_table(results: list[ClaimResult]) -> dict[str, list]:
    """The verdict table as columns (an MLflow table artifact)."""
    rows = [claim_row(result) for result in results]
    return {column: [row[column] for row in rows] for column in VERDICT_COLUMNS}
