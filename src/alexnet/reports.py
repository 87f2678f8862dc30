"""Rendering a study from its runs: the variant table, the claims' verdict table, JSON, curves and figures.

What is estimated and how a verdict is reached lives in claims.py (and stats.py); this module only writes it
down. `write_report` is the one path from a folder of runs to a report: `alexnet report` and the compare stage.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet import stats
from alexnet.claims import FAMILY_ALPHA, ClaimResult, Contrasts, evaluate_claims
from alexnet.paper_claims import CLAIMS
from alexnet.report_claims import claim_metrics, claim_row, holm_text, verdict_table
from alexnet.report_figures import write_claims_figure, write_curves, write_overfitting_figure
from alexnet.run_identity import BASELINE, FIGURE1_PLOT, FIGURE1_RESULTS
from alexnet.runs import TARGET_TRAIN_ERROR, RunResult, RunsError, load_runs
from alexnet.stats import Estimate

VERDICT_RULE = (
    "Each effect is signed so that positive is the paper's side. **Direction**: **reproduced** when the 95% "
    "interval excludes zero on the paper's side, **opposite** when it excludes zero on the other side, "
    "**inconclusive** when it contains zero; one seed, or seeds without spread, is always **inconclusive**. "
    "**Magnitude**, against the paper's number: **consistent** when the interval contains it, **smaller** or "
    "**larger than the paper** when it lies above or below the interval, **not tested** where the paper gives "
    "no number (\"over 1%\" can only be smaller). **Intervals**: seeds are blocks and variants treatments, so "
    "every \"variant minus baseline\" error or gap contrast takes its t-interval from one residual variance "
    "pooled over all variants x seeds (two-way, no interaction, df = (V-1)(S-1)), unless Brown-Forsythe's test "
    f"on the per-variant paired differences rejects equal spread (p < {stats.POOLING_ALPHA}), when the row "
    "falls back to its own paired t and says so. 10-crop: a t-interval over the per-seed gains of the same "
    "models, with a two-level bootstrap (seeds, then val images) in the notes. Epoch ratios: log ratios per "
    "seed, each count known to +-1 epoch (a range, whose width adds a uniform rounding variance); a run that "
    "never reaches 25% training error enters at its bound, which makes the effect a bound (>=, <=), open on "
    "that side. Top-5 claims need at least 100 classes. **Power**: at the paper's effect, from the noncentral "
    "t with the measured sd (pooled where pooled); **seeds for 80%**: the seeds that give 80% power, and in "
    "brackets the same with the sd at its upper 80% confidence bound. **Holm**: whether a decisive direction "
    f"(and a magnitude that differs) survives Holm's correction over the claims tested (family-wise "
    f"{FAMILY_ALPHA:.0%}); the headline counts after Holm. Extras are shown, never counted."
)


@dataclass
class Report:
    markdown: Path
    files: list[Path] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    claims: list[ClaimResult] = field(default_factory=list)
    runs: list[RunResult] = field(default_factory=list)

    def flat_metrics(self) -> dict[str, float]:
        """Per-variant mean errors (fractions) and each claim's effect and interval (points, or the ratio)."""
        flat = {}
        for row in self.rows:
            for key in ("top1_error", "top5_error", "ten_crop_top1_error"):
                if row.get(key) is not None:
                    flat[f"{row['variant']}.{key}"] = row[key]
        return {**flat, **claim_metrics(self.claims)}

    def verdict_table(self) -> dict[str, list]:
        return verdict_table(self.claims)

    def claim(self, key: str) -> ClaimResult:
        return next(result for result in self.claims if result.claim.key == key)


# -- the tables ---------------------------------------------------------------------------------------------
def top_k_of(runs: list[RunResult]) -> int:
    """The k of evaluate's top-k error (metrics.json's `top<k>_error` besides top-1)."""
    pattern = re.compile(r"top(\d+)_error")
    found = {int(match.group(1)) for run in runs for key in run.metrics if (match := pattern.fullmatch(key))}
    return max(found - {1}, default=5)


def delta_text(estimate: Estimate | None) -> str:
    if estimate is None:
        return "no baseline"
    point = f"{estimate.mean * 100:+.2f} pt"
    if estimate.no_interval:
        return f"{point} ({estimate.no_interval})"
    return f"{point} [{estimate.low * 100:+.2f}, {estimate.high * 100:+.2f}]"


def _mean(values) -> float | None:
    values = [value for value in values if value is not None and math.isfinite(value)]
    return float(np.mean(values)) if values else None


def _variant_claims(variant: str) -> str:
    if variant == BASELINE:
        return "all (reference)"
    names = [claim.name + (" (extra)" if claim.extra else "") for claim in CLAIMS
             if variant in (claim.variant, claim.against)]  # fmt: skip
    return ", ".join(names) or "extra (no claim)"


def variant_rows(runs: list[RunResult], top_k: int) -> list[dict]:
    keys = ("top1_error", f"top{top_k}_error")
    deltas = {key: Contrasts(runs, lambda run, key=key: run.metrics.get(key)) for key in keys}
    rows = []
    for variant in sorted({run.variant for run in runs}, key=lambda name: (name != BASELINE, name)):
        members = [run for run in runs if run.variant == variant]
        row = {"variant": variant, "seeds": len(members)}
        for key in ("top1_error", f"top{top_k}_error", "ten_crop_top1_error", f"ten_crop_top{top_k}_error"):
            row[key] = _mean(run.metrics.get(key) for run in members)
        row["train_val_gap"] = _mean(run.train_val_gap() for run in members)
        reached = [run.epochs_to() for run in members]
        median = float(np.median([math.inf if epoch is None else epoch for epoch, _ in reached]))
        row["epochs_to_25"] = None if math.isinf(median) else median
        row["epochs_to_25_text"] = f"> {max(run.epochs for run in members)}" if math.isinf(median) else f"{median:g}"
        done = all(epoch is not None for epoch, _ in reached)
        row["seconds_to_25"] = float(np.mean([seconds for _, seconds in reached])) if done else None
        if variant != BASELINE:
            for key, contrasts in deltas.items():
                row[f"delta_{key.removesuffix('_error')}"] = delta_text(contrasts.estimate(variant)[0])
        row["claims"] = _variant_claims(variant)
        rows.append(row)
    return rows


def _fmt(value, percent: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.2f}" if percent else f"{value:.1f}"


def variant_lines(runs: list[RunResult], rows: list[dict], top_k: int) -> list[str]:
    lines = [
        f"{len(runs)} runs, seeds: {sorted({run.seed for run in runs})}. Errors in %; deltas in points vs baseline "
        "with 95% intervals from the pooled seed variance (see the rule below). Train-val gap and epochs to "
        f"{TARGET_TRAIN_ERROR:.0%} use the inference-mode training error (no dropout, no augmentation, centre "
        "crop, fixed train subset).", "",
        f"| variant | seeds | top-1 | top-{top_k} | 10-crop top-1 | 10-crop top-{top_k} | train-val gap | "
        f"epochs to 25% (median) | seconds to 25% | delta top-1 | delta top-{top_k} | claims |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['seeds']} | {_fmt(row['top1_error'])} | {_fmt(row[f'top{top_k}_error'])} | "
            f"{_fmt(row['ten_crop_top1_error'])} | {_fmt(row[f'ten_crop_top{top_k}_error'])} | "
            f"{_fmt(row['train_val_gap'])} | {row['epochs_to_25_text']} | {_fmt(row['seconds_to_25'], False)} | "
            f"{row.get('delta_top1', '')} | {row.get(f'delta_top{top_k}', '')} | {row['claims']} |"
        )
    return lines


def pooling_lines(runs: list[RunResult]) -> list[str]:
    """The pooled seed-variance model per value: its sd, df, and whether Brown-Forsythe lets it pool."""
    lines = []
    for label, value in (("top-1 error", lambda run: run.metrics.get("top1_error")),
                         ("train-val gap", RunResult.train_val_gap)):  # fmt: skip
        model = Contrasts(runs, value).model
        if model is None:
            continue
        test = "not testable" if model.homogeneity_p is None else f"p = {model.homogeneity_p:.3f}"
        verdict = "pooled" if model.pooling_holds else "rejected: per-claim intervals"
        lines.append(f"- {label}: residual sd {model.residual_sd * 100:.2f} pt over {len(model.variants)} variants "
                     f"x {len(model.seeds)} seeds (df {model.df}); Brown-Forsythe {test}, {verdict}")  # fmt: skip
    return ["Seed variance, pooled (seeds are blocks, variants treatments):", "", *lines, ""] if lines else []


def claims_summary(claims: list[ClaimResult], holm_family: list[ClaimResult] | None = None,
                   untested: bool = True) -> str:
    """The headline: each verdict counted after Holm (a verdict that fails Holm counts as undecided).
    holm_family: every study's claims when Holm ran over several studies (report_datasets.py)."""
    tested = [result for result in claims if result.tested]
    sized = [result for result in tested if result.magnitude_tested]
    family = holm_family or claims
    wide = holm_family is not None and len(holm_family) != len(claims)
    over = sum(result.tested for result in family), sum(result.magnitude_tested for result in family)
    labels = (("claims tested", ""), ("magnitudes tested", " with a number and an interval"))
    over_text = [f"all {count} {what} in the studies reported together" if wide else f"the {count}{suffix}"
                 for count, (what, suffix) in zip(over, labels, strict=True)]  # fmt: skip
    reproduced = sum(r.direction == "reproduced" and bool(r.holm_survives) for r in tested)
    opposite = sum(r.direction == "opposite" and bool(r.holm_survives) for r in tested)
    decisive = sum(r.direction in ("reproduced", "opposite") for r in tested)
    smaller = sum(r.magnitude == "smaller than the paper" and bool(r.magnitude_holm_survives) for r in sized)
    larger = sum(r.magnitude == "larger than the paper" and bool(r.magnitude_holm_survives) for r in sized)
    text = (f"**{len(tested)} claims tested** (>= 2 seeds, testable, extras left out). Direction, after Holm over "
            f"{over_text[0]}: **{reproduced} reproduced, {opposite} opposite, "
            f"{len(tested) - reproduced - opposite} inconclusive** ({decisive} decisive before Holm). Magnitude "
            f"against the paper's number, after Holm over {over_text[1]}: "
            f"**{len(sized) - smaller - larger} consistent, {smaller} smaller than the paper, {larger} larger than "
            "the paper**.")  # fmt: skip
    reasons: dict[str, list[str]] = {}
    for result in claims:
        if untested and not result.tested and not result.claim.extra:
            reasons.setdefault(result.direction, []).append(result.claim.name)
    if reasons:
        text += " Not tested: " + "; ".join(f"{why}: {', '.join(names)}" for why, names in reasons.items()) + "."
    return text


def claim_lines(claims: list[ClaimResult]) -> list[str]:
    lines = [
        "| claim | paper | paper's value | our effect [95% interval] | seeds | direction | magnitude | Holm "
        "(direction / magnitude) | power now | seeds for 80% power (sd's upper 80% bound) | interval | measured as |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in claims:
        row = claim_row(result)
        name = f"{result.claim.name} (extra)" if result.claim.extra else result.claim.name
        holm = (f"{holm_text(result.holm_survives, result.direction in ('reproduced', 'opposite'))} / "
                f"{holm_text(result.magnitude_holm_survives, result.magnitude.endswith('the paper'))}")  # fmt: skip
        lines.append(
            f"| {name} | {result.claim.section} | {result.claim.paper_value} | {row['measured']} | {row['seeds']} | "
            f"**{result.direction}** | {result.magnitude} | {holm} | {row['power_text']} | {row['seeds_text']} | "
            f"{row['interval']} | {result.how} |"
        )
    notes = [f"- **{result.claim.name}**: {note}" for result in claims for note in result.notes]
    return [*lines, "", *(["Notes:", "", *notes, ""] if notes else [])]


def tracked_section(tracked: list[dict]) -> list[str]:
    """Every variant run in the MLflow store, ad-hoc `dvc exp run -S ...` experiments included: the compare
    stage adds it (a runs folder cannot know the store), after everything `alexnet report` writes."""
    lines = [
        "## Every tracked run (MLflow store)", "",
        "Runs from all DVC experiments that share this store, oldest first. Errors in %.", "",
        "| DVC experiment | run | variant | seed | commit | top-1 | top-5 | 10-crop top-1 |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in tracked:
        lines.append(
            f"| {row['dvc_exp_name']} | {row['run']} | {row['variant']} | {row['seed']} | {row['git_commit']} | "
            f"{_fmt(row['top1_error'])} | {_fmt(row['top5_error'])} | {_fmt(row['ten_crop_top1_error'])} |"
        )
    return [*lines, ""]


def write_report(
    runs: list[RunResult], folder: Path, figure1: dict | None = None, tracked: list[dict] | None = None
) -> Report:
    """ablations.md / .json, claims.png, curves.csv / .png in `folder`, from the runs (and figure1.json).
    `tracked` (the compare stage's MLflow runs) adds a last section and a `tracked_runs` list."""
    return render_report(runs, folder, figure1, tracked)


def render_report(
    runs: list[RunResult], folder: Path, figure1: dict | None = None, tracked: list[dict] | None = None,
    claims: list[ClaimResult] | None = None, holm_family: list[ClaimResult] | None = None,
) -> Report:
    """write_report, or with `claims` already evaluated and Holm-adjusted over `holm_family`, the claims of
    several studies (report_datasets.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    top_k = top_k_of(runs)
    rows = variant_rows(runs, top_k)
    claims = evaluate_claims(runs, figure1) if claims is None else claims
    report = Report(markdown=folder / "ablations.md", rows=rows, claims=claims, runs=runs)
    lines = ["# Ablation study", "", *variant_lines(runs, rows, top_k), ""]
    lines += ["## Paper claims", "", claims_summary(claims, holm_family), "", *claim_lines(claims)]
    lines += pooling_lines(runs)
    lines += [VERDICT_RULE, "", "![claims: our effects and intervals beside the paper's values](claims.png)", ""]
    lines += ["![curves](curves.png)", ""]
    overfitting = write_overfitting_figure(runs, folder)
    if overfitting:
        lines += [f"![dropout: inference-mode train error (solid) and val error (dashed)]({overfitting.name})", ""]
    if figure1:
        lines += [f"![Figure 1: ReLU (solid) vs tanh (dashed)](figure1/{FIGURE1_PLOT})", ""]
    lines += tracked_section(tracked) if tracked else []
    report.markdown.write_text("\n".join(lines))
    tested = [result for result in claims if result.tested]
    summary = {
        "variants": rows,
        "claims": [claim_row(result) for result in claims],
        "claims_tested": len(tested),
        "holm_survivors": sum(bool(result.holm_survives) for result in tested),
        "verdict_rule": VERDICT_RULE,
        **({"tracked_runs": tracked} if tracked else {}),
    }
    json_path = folder / "ablations.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    report.files = [report.markdown, json_path, write_claims_figure(claims, folder), *write_curves(runs, folder)]
    report.files += [overfitting] if overfitting else []
    return report


def figure1_beside(runs: Path) -> Path:
    """Where a runs folder keeps Figure 1's results: figure1/figure1.json beside it (docs/study/figure1/,
    reports/figure1/ for the workspace's reports/runs/)."""
    return runs.parent / "figure1" / FIGURE1_RESULTS


def report_from_folder(
    runs: Path, out: Path, figure1: Path | None = None, models: Path | None = None, tracked: list[dict] | None = None
) -> Report:
    """Load a folder of runs (run.json from `models` if given) and Figure 1's results, and write the report.
    Without `figure1`, figure1/figure1.json beside the runs folder is used when it exists."""
    loaded = load_runs(runs, models)
    if figure1 is not None and not figure1.is_file():
        raise RunsError(f"{figure1}: missing; run the figure1 stage, or leave out --figure1")
    figure1 = figure1 or figure1_beside(runs)
    results = json.loads(figure1.read_text()) if figure1.is_file() else None
    return write_report(loaded, out, results, tracked)
