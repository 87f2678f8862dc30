"""The compare stage's rendering: the variant table, the paper-claim verdict table, curves (reports/).

What is estimated and how a verdict is reached lives in claims.py; this module only writes it down.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet.claims import (
    BASELINE,
    CLAIMS,
    VERDICT_RULE,
    ClaimResult,
    Estimate,
    RunResult,
    claim_metrics,
    evaluate_claims,
    paired_delta,
    t_interval,
    verdict_table,
)
from alexnet.config import Config


@dataclass
class Report:
    markdown: Path
    files: list[Path] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    claims: list[ClaimResult] = field(default_factory=list)

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


def delta_text(estimate: Estimate | None) -> str:
    if estimate is None:
        return "no baseline"
    point = f"{estimate.mean * 100:+.2f} pt"
    if estimate.low is None:
        return f"{point} (1 seed)"
    return f"{point} [{estimate.low * 100:+.2f}, {estimate.high * 100:+.2f}]"


def _mean(values) -> float | None:
    estimate = t_interval(list(values))
    return estimate.mean if estimate else None


def _variant_claims(variant: str) -> str:
    if variant == BASELINE:
        return "all (reference)"
    names = [claim.name + (" (extra)" if claim.extra else "") for claim in CLAIMS
             if variant in (claim.variant, claim.against)]  # fmt: skip
    return ", ".join(names) or "extra (no claim)"


def variant_rows(runs: list[RunResult], top_k: int) -> list[dict]:
    rows = []
    for variant in sorted({run.variant for run in runs}, key=lambda name: (name != BASELINE, name)):
        members = [run for run in runs if run.variant == variant]
        row = {"variant": variant, "seeds": len(members)}
        for key in ("top1_error", f"top{top_k}_error", "ten_crop_top1_error", f"ten_crop_top{top_k}_error"):
            row[key] = _mean(run.metrics.get(key) for run in members)
        row["train_val_gap"] = _mean(run.train_val_gap() for run in members)
        reached = [run.epochs_to() for run in members]
        epochs = [math.inf if epoch is None else epoch for epoch, _ in reached]
        median = float(np.median(epochs)) if epochs else math.inf
        row["epochs_to_25"] = None if math.isinf(median) else median
        most = max((run.epochs for run in members), default=0)
        row["epochs_to_25_text"] = f"> {most}" if math.isinf(median) else f"{median:g}"
        done = all(math.isfinite(epoch) for epoch in epochs)
        row["seconds_to_25"] = float(np.mean([seconds for _, seconds in reached])) if done and epochs else None
        row["inference_train_error"] = all(run.inference_train_error for run in members)
        if variant != BASELINE:
            row["delta_top1"] = delta_text(paired_delta(runs, variant, "top1_error"))
            row[f"delta_top{top_k}"] = delta_text(paired_delta(runs, variant, f"top{top_k}_error"))
        row["claims"] = _variant_claims(variant)
        rows.append(row)
    return rows


def _yes_no(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "-" if value is None else (yes if value else no)


def _seeds_needed_text(result: ClaimResult) -> str:
    if result.estimate is None:
        return "-"
    if result.estimate.censored:
        return "train longer (censored)"
    if result.estimate.sd is None:
        return "- (needs 2 seeds)"
    needed = result.seeds_needed
    return f"> {1000}" if needed is None else str(needed)


def claims_summary(claims: list[ClaimResult]) -> str:
    tested = [result for result in claims if result.tested]
    counts = {name: sum(result.verdict.startswith(name) for result in tested)
              for name in ("reproduced", "not reproduced", "inconclusive")}  # fmt: skip
    survivors = sum(bool(result.holm_survives) for result in tested)
    decisive = sum(result.decisive for result in tested)
    untested: dict[str, list[str]] = {}
    for result in claims:
        if not result.tested and not result.claim.extra:
            untested.setdefault(result.verdict, []).append(result.claim.name)
    text = (f"**{len(tested)} claims tested** (>= 2 seeds, testable, extras left out): "
            f"{counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
            f"{counts['inconclusive']} inconclusive; {survivors} of {decisive} decisive verdicts survive Holm's "
            f"correction over the {len(tested)}.")  # fmt: skip
    if untested:
        text += " Not tested: " + "; ".join(f"{why}: {', '.join(names)}" for why, names in untested.items()) + "."
    return text


def claim_lines(claims: list[ClaimResult]) -> list[str]:
    lines = [
        "| claim | paper | paper's value | our effect [95% interval] | seeds | verdict | paper in interval | "
        "underpowered | Holm | seeds needed | measured as |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in claims:
        name = f"{result.claim.name} (extra)" if result.claim.extra else result.claim.name
        seeds = result.estimate.seeds if result.estimate else 0
        holm = _yes_no(result.holm_survives, "survives", "fails") if result.decisive else "-"
        lines.append(
            f"| {name} | {result.claim.section} | {result.claim.paper_value} | {result.effect_text()} | {seeds} | "
            f"**{result.verdict}** | {_yes_no(result.paper_in_interval)} | {_yes_no(result.underpowered)} | "
            f"{holm} | {_seeds_needed_text(result)} | {result.how} |"
        )
    notes = [f"- **{result.claim.name}**: {note}" for result in claims for note in result.notes]
    return [*lines, "", *(["Notes:", "", *notes, ""] if notes else [])]


def _fmt(value, percent: bool = True) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value * 100:.2f}" if percent else f"{value:.1f}"


def write_curves(runs: list[RunResult], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv_path = folder / "curves.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "epoch", "top1_error", "val_top1_error"])
        for run in runs:
            writer.writerows(
                (run.name, int(r["epoch"]), r["top1_error"], r["val_top1_error"]) for r in run.history
            )
    figure, (train_axes, val_axes) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colours = plt.get_cmap("tab10")
    variants = sorted({run.variant for run in runs})
    for run in runs:
        if not run.history:
            continue
        colour = colours(variants.index(run.variant) % 10)
        epochs = [r["epoch"] for r in run.history]
        label = run.name
        train_axes.plot(epochs, [r["top1_error"] for r in run.history], color=colour, label=label)
        val_axes.plot(epochs, [r["val_top1_error"] for r in run.history], color=colour, label=label)
    train_axes.set_title("training top-1 error")
    val_axes.set_title("validation top-1 error")
    for axes in (train_axes, val_axes):
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
    train_axes.set_ylabel("error")
    val_axes.legend(fontsize=7)
    figure.tight_layout()
    png_path = folder / "curves.png"
    figure.savefig(png_path, dpi=120)
    plt.close(figure)
    return [csv_path, png_path]


def write_claims_figure(claims: list[ClaimResult], folder: Path) -> Path:
    """Each claim's effect with its 95% interval beside the paper's value: error claims in points (left),
    speed ratios on a log scale (right). A censored side is drawn as an arrow to the panel's edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [result for result in claims if result.estimate is not None]
    panels = [[r for r in shown if not r.claim.ratio], [r for r in shown if r.claim.ratio]]
    heights = [max(1, len(panel)) for panel in panels]
    figure, axes_pair = plt.subplots(
        2, 1, figsize=(8, 1.2 + 0.45 * sum(heights)), gridspec_kw={"height_ratios": heights}
    )
    colours = {"reproduced": "tab:green", "not reproduced": "tab:red"}
    for axes, panel, ratio in zip(axes_pair, panels, (False, True), strict=True):
        values = [v for r in panel for v in (r.shown(r.estimate.low), r.shown(r.estimate.high),
                                               r.shown(r.estimate.mean), r.shown(r.claim.paper_effect)) if v]
        edge_low, edge_high = (min(values + [1.0 if ratio else 0.0]), max(values + [1.0 if ratio else 0.0]))
        pad = (edge_high / edge_low) ** 0.1 if ratio else 0.1 * (edge_high - edge_low or 1.0)
        edge_low, edge_high = (edge_low / pad, edge_high * pad) if ratio else (edge_low - pad, edge_high + pad)
        for row, result in enumerate(reversed(panel)):
            estimate, colour = result.estimate, colours.get(result.verdict, "tab:grey")
            low = result.shown(estimate.low) or edge_low if estimate.low is not None else None
            high = result.shown(estimate.high) or edge_high if estimate.high is not None else None
            if low is not None:
                axes.plot([low, high], [row, row], color=colour, linewidth=2.5, solid_capstyle="butt")
            for side, end in (("low", low), ("high", high)):
                if end in (edge_low, edge_high) and getattr(estimate, side) is not None:
                    axes.annotate("", (end, row), (end / 1.15 if side == "high" and ratio else end, row),
                                  arrowprops={"arrowstyle": "->", "color": colour})  # fmt: skip
            axes.plot(result.shown(estimate.mean), row, "o", color=colour)
            if result.claim.paper_gives_number:
                axes.plot(result.shown(result.claim.paper_effect), row, "D", mfc="none", color="black")
        axes.axvline(1.0 if ratio else 0.0, color="black", linewidth=0.8)
        axes.set_yticks(range(len(panel)), [f"{r.claim.name} ({r.verdict})" for r in reversed(panel)], fontsize=8)
        axes.set_xlim(edge_low, edge_high)
        if ratio:
            from matplotlib.ticker import FuncFormatter, NullFormatter

            axes.set_xscale("log")
            axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
            axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("ratio (paper's side > 1)" if ratio else "effect, error points (paper's side > 0)")
        axes.grid(axis="x", alpha=0.3)
    axes_pair[0].set_title("Our effect (dot) and 95% interval vs the paper's value (diamond)", fontsize=10)
    figure.tight_layout()
    path = folder / "claims.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def tracked_section(tracked: list[dict] | None) -> list[str]:
    """Every variant run in the MLflow store, ad-hoc `dvc exp run -S ...` experiments included."""
    if not tracked:
        return []
    lines = [
        "## Every tracked run (MLflow store)",
        "",
        "Runs from all DVC experiments that share this store, oldest first. Errors in %.",
        "",
        "| DVC experiment | run | variant | seed | commit | top-1 | top-5 | 10-crop top-1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in tracked:
        lines.append(
            f"| {row['dvc_exp_name']} | {row['run']} | {row['variant']} | {row['seed']} | {row['git_commit']} | "
            f"{_fmt(row['top1_error'])} | {_fmt(row['top5_error'])} | {_fmt(row['ten_crop_top1_error'])} |"
        )
    return [*lines, ""]


def build_report(
    cfg: Config, runs: list[RunResult], folder: Path, figure1: dict | None = None, tracked: list[dict] | None = None
) -> Report:
    if not runs:
        raise ValueError("compare: no evaluated runs (run.json + metrics.json); run train and evaluate first")
    folder.mkdir(parents=True, exist_ok=True)
    top_k = cfg.evaluate.top_k
    rows = variant_rows(runs, top_k)
    claims = evaluate_claims(runs, figure1)
    report = Report(markdown=folder / "ablations.md", rows=rows, claims=claims)
    lines = [
        "# Ablation study", "",
        f"{len(runs)} runs, seeds: {sorted({run.seed for run in runs})}. Errors in %; deltas in points vs baseline "
        "with 95% t-intervals over paired seeds. Train-val gap and epochs to 25% use the inference-mode training "
        "error (no dropout, no augmentation, centre crop, fixed train subset).", "",
        f"| variant | seeds | top-1 | top-{top_k} | 10-crop top-1 | 10-crop top-{top_k} | train-val gap | "
        f"epochs to 25% (median) | seconds to 25% | delta top-1 | delta top-{top_k} | claims |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in rows:
        gap = _fmt(row["train_val_gap"]) + ("" if row["inference_train_error"] or row["train_val_gap"] is None else "*")
        lines.append(
            f"| {row['variant']} | {row['seeds']} | {_fmt(row['top1_error'])} | {_fmt(row[f'top{top_k}_error'])} | "
            f"{_fmt(row['ten_crop_top1_error'])} | {_fmt(row[f'ten_crop_top{top_k}_error'])} | {gap} | "
            f"{row['epochs_to_25_text']} | {_fmt(row['seconds_to_25'], False)} | {row.get('delta_top1', '')} | "
            f"{row.get(f'delta_top{top_k}', '')} | {row['claims']} |"
        )
    if not all(row["inference_train_error"] for row in rows):
        lines += ["", "\\* some runs have no inference-mode training error (older history): Keras' running metric."]
    lines += ["", "## Paper claims", "", claims_summary(claims), "", *claim_lines(claims), VERDICT_RULE, ""]
    lines += ["![claims: our effects and intervals beside the paper's values](claims.png)", ""]
    lines += ["![curves](curves.png)", ""]
    if figure1:
        lines += ["![Figure 1: ReLU (solid) vs tanh (dashed)](figure1/figure1.png)", ""]
    lines += tracked_section(tracked)
    report.markdown.write_text("\n".join(lines))
    json_path = folder / "ablations.json"
    tested = [result for result in claims if result.tested]
    summary = {
        "variants": rows,
        "claims": [result.as_dict() for result in claims],
        "claims_tested": len(tested),
        "holm_survivors": sum(bool(result.holm_survives) for result in tested),
        "verdict_rule": VERDICT_RULE,
        "tracked_runs": tracked or [],
    }
    json_path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    report.files = [report.markdown, json_path, write_claims_figure(claims, folder), *write_curves(runs, folder)]
    return report
