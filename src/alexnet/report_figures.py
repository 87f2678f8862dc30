"""The report's figures: every run's error curves (curves.csv/.png), the claims' forest plot (claims.png) and
dropout's train and val error on one plot (dropout.png)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from alexnet.claims import ClaimResult
from alexnet.report_claims import shown
from alexnet.run_identity import BASELINE
from alexnet.runs import TARGET_TRAIN_ERROR, RunResult

PNG_METADATA = {"Software": None}  # no matplotlib version in the file: the same figure gives the same bytes


def write_curves(runs: list[RunResult], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv_path = folder / "curves.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "epoch", "top1_error", "val_top1_error"])
        for run in runs:
            writer.writerows((run.name, int(r["epoch"]), r["top1_error"], r["val_top1_error"]) for r in run.history)
    figure, (train_axes, val_axes) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colours = plt.get_cmap("tab10")
    variants = sorted({run.variant for run in runs})
    for run in runs:
        colour = colours(variants.index(run.variant) % 10)
        epochs = [r["epoch"] for r in run.history]
        train_axes.plot(epochs, [r["top1_error"] for r in run.history], color=colour, label=run.name)
        val_axes.plot(epochs, [r["val_top1_error"] for r in run.history], color=colour, label=run.name)
    train_axes.set_title("training top-1 error (running, dropout and augmentation on)")
    val_axes.set_title("validation top-1 error")
    for axes in (train_axes, val_axes):
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
    train_axes.set_ylabel("error")
    val_axes.legend(fontsize=7)
    figure.tight_layout()
    png_path = folder / "curves.png"
    figure.savefig(png_path, dpi=120, metadata=PNG_METADATA)
    plt.close(figure)
    return [csv_path, png_path]


def write_overfitting_figure(runs: list[RunResult], folder: Path, with_it: str = BASELINE,
                             without: str = "no_dropout") -> Path | None:
    """Sec. 4.2's overfitting on one plot: per variant, the inference-mode training error (solid) and the val
    error (dashed), mean over seeds with the seeds' range shaded. None when either variant or the inference-mode
    training error is missing."""
    curves = {}
    for variant in (with_it, without):
        members = [run for run in runs if run.variant == variant]
        epochs = min((run.epochs for run in members), default=0)
        if not epochs or not all(math.isfinite(row.get("train_eval_top1_error", math.nan))
                                 for run in members for row in run.history[:epochs]):  # fmt: skip
            return None
        curves[variant] = {key: np.array([[row[key] for row in run.history[:epochs]] for run in members])
                           for key in ("train_eval_top1_error", "val_top1_error")}  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for colour, (variant, values) in zip(("tab:blue", "tab:orange"), curves.items(), strict=True):
        for key, style, what in (("train_eval_top1_error", "-", "train"), ("val_top1_error", "--", "val")):
            table = values[key]
            epochs = np.arange(1, table.shape[1] + 1)
            axes.plot(epochs, table.mean(axis=0), style, color=colour,
                      label=f"{variant} {what} ({table.shape[0]} seeds)")  # fmt: skip
            axes.fill_between(epochs, table.min(axis=0), table.max(axis=0), color=colour, alpha=0.15, linewidth=0)
    axes.axhline(TARGET_TRAIN_ERROR, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xlabel("epoch")
    axes.set_ylabel("top-1 error")
    axes.set_title("Dropout: inference-mode train error (solid) vs val error (dashed)", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = folder / "dropout.png"
    figure.savefig(path, dpi=120, metadata=PNG_METADATA)
    plt.close(figure)
    return path


def _panel_edges(panel: list[ClaimResult], ratio: bool) -> tuple[float, float]:
    values = [v for r in panel for v in (shown(r, r.estimate.low), shown(r, r.estimate.high),
                                         shown(r, r.estimate.mean), shown(r, r.claim.paper_effect)) if v]  # fmt: skip
    edge_low, edge_high = min(values + [1.0 if ratio else 0.0]), max(values + [1.0 if ratio else 0.0])
    pad = (edge_high / edge_low) ** 0.1 if ratio else 0.1 * (edge_high - edge_low or 1.0)
    return (edge_low / pad, edge_high * pad) if ratio else (edge_low - pad, edge_high + pad)


def _holm_note(result: ClaimResult) -> str:
    return ", fails Holm" if result.direction in ("reproduced", "opposite") and not result.holm_survives else ""


def _draw_panel(axes, panel: list[ClaimResult], ratio: bool) -> None:
    colours = {"reproduced": "tab:green", "opposite": "tab:red"}
    edge_low, edge_high = _panel_edges(panel, ratio)
    for row, result in enumerate(reversed(panel)):
        estimate, colour = result.estimate, colours.get(result.direction, "tab:grey")
        if estimate.low is not None:
            low, high = shown(result, estimate.low) or edge_low, shown(result, estimate.high) or edge_high
            axes.plot([low, high], [row, row], color=colour, linewidth=2.5, solid_capstyle="butt")
            for end, bound in ((low, estimate.low), (high, estimate.high)):
                if math.isinf(bound):  # a censored side: an arrow to the panel's edge
                    start = end / 1.15 if ratio and bound > 0 else end * (1.15 if ratio else 1)
                    axes.annotate("", (end, row), (start, row), arrowprops={"arrowstyle": "->", "color": colour})
        axes.plot(shown(result, estimate.mean), row, "o", color=colour)
        if result.claim.paper_gives_number:
            axes.plot(shown(result, result.claim.paper_effect), row, "D", mfc="none", color="black")
    axes.axvline(1.0 if ratio else 0.0, color="black", linewidth=0.8)
    labels = [f"{r.claim.name} ({r.direction}{_holm_note(r)}; {r.magnitude})" for r in reversed(panel)]
    axes.set_yticks(range(len(panel)), labels, fontsize=7)
    axes.set_xlim(edge_low, edge_high)
    if ratio:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
        axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("ratio (paper's side > 1)" if ratio else "effect, error points (paper's side > 0)")
    axes.grid(axis="x", alpha=0.3)


def write_claims_figure(claims: list[ClaimResult], folder: Path) -> Path:
    """Each claim's effect with its 95% interval beside the paper's value: error claims in points (top),
    speed ratios on a log scale (bottom). A censored side is drawn as an arrow to the panel's edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [result for result in claims if result.estimate is not None]
    panels = [[r for r in drawn if not r.claim.ratio], [r for r in drawn if r.claim.ratio]]
    heights = [max(1, len(panel)) for panel in panels]
    figure, axes_pair = plt.subplots(2, 1, figsize=(9, 1.2 + 0.45 * sum(heights)),
                                     gridspec_kw={"height_ratios": heights})  # fmt: skip
    for axes, panel, ratio in zip(axes_pair, panels, (False, True), strict=True):
        if panel:
            _draw_panel(axes, panel, ratio)
    axes_pair[0].set_title("Our effect (dot) and 95% interval vs the paper's value (diamond)", fontsize=10)
    figure.tight_layout()
    path = folder / "claims.png"
    figure.savefig(path, dpi=120, metadata=PNG_METADATA)
    plt.close(figure)
    return path
