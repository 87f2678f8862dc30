"""The compare stage: ablation table, paper-claim verdicts and curves (reports/)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet.config import Config
from alexnet.stage import RunLayout

BASELINE = "baseline"
TARGET_TRAIN_ERROR = 0.25  # Fig. 1: epochs to reach 25% training error


@dataclass
class RunResult:
    name: str
    variant: str
    seed: int
    metrics: dict[str, float]
    history: list[dict[str, float]]
    mlflow_run_id: str | None = None

    def epochs_to(self, error: float = TARGET_TRAIN_ERROR) -> tuple[int | None, float | None]:
        """First epoch (and cumulative wall seconds) whose training top-1 error is <= `error`."""
        seconds = 0.0
        for row in self.history:
            seconds += row["seconds"]
            if row["top1_error"] <= error:
                return int(row["epoch"]), seconds
        return None, None

    def train_val_gap(self) -> float | None:
        if not self.history:
            return None
        last = self.history[-1]
        return last["val_top1_error"] - last["top1_error"]


def _read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def collect_runs(models: Path, reports: Path) -> list[RunResult]:
    """Every trained and evaluated replicate: run.json under `models`, metrics.json under `reports`."""
    runs = []
    for layout in RunLayout.trained(models, reports):
        if not layout.metrics_file.is_file():
            continue
        runs.append(
            RunResult(
                name=layout.name,
                variant=layout.variant,
                seed=layout.seed,
                metrics=json.loads(layout.metrics_file.read_text()),
                history=_read_history(layout.history_file),
                mlflow_run_id=layout.identity().get("mlflow_run_id"),
            )
        )
    return runs


# -- statistics -----------------------------------------------------------------------------------------
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its 95% t-interval; `low`/`high` are None for a single run."""

    mean: float
    count: int
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, values: list[float]) -> Estimate | None:
        values = [value for value in values if value is not None and not math.isnan(value)]
        if not values:
            return None
        mean = float(np.mean(values))
        if len(values) < 2:
            return cls(mean, 1)
        half = T_975.get(len(values) - 1, 1.96) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
        return cls(mean, len(values), mean - half, mean + half)

    def crosses_zero(self) -> bool:
        return self.low is not None and self.low <= 0.0 <= self.high

    def text(self, scale: float = 100.0, unit: str = "") -> str:
        if self.low is None:
            return f"{self.mean * scale:+.2f}{unit} (single run)"
        return f"{self.mean * scale:+.2f}{unit} [{self.low * scale:+.2f}, {self.high * scale:+.2f}]"


def paired_delta(runs: list[RunResult], variant: str, metric, baseline: str = BASELINE) -> Estimate | None:
    """variant minus baseline, paired by the seeds both ran; None when they share no seed."""
    by_seed = {(run.variant, run.seed): run for run in runs}
    seeds = sorted(
        {seed for name, seed in by_seed if name == variant}
        & {seed for name, seed in by_seed if name == baseline}
    )
    if not seeds:
        return None
    values = [_value(metric, by_seed[(variant, seed)]) for seed in seeds]
    bases = [_value(metric, by_seed[(baseline, seed)]) for seed in seeds]
    return Estimate.of([v - b for v, b in zip(values, bases, strict=True) if v is not None and b is not None])


def _value(metric, run: RunResult) -> float | None:
    return metric(run) if callable(metric) else run.metrics.get(metric)


# -- verdicts -------------------------------------------------------------------------------------------
VERDICT_RULE = (
    "Each claim is a signed effect (the paper's improvement). With >= 2 seeds: **inconclusive** when the "
    "95% interval of our effect crosses zero; **not reproduced** when the interval lies on the opposite "
    "side; **reproduced** when it lies on the paper's side and the mean is at least half the paper's "
    "effect; **direction only** when it lies on the paper's side but the mean is smaller than that. "
    "With a single run the same rule applies to the point estimate, and the verdict says 'single run'."
)


def verdict(measured: Estimate | None, paper_effect: float) -> str:
    """Classify a measured effect (positive = improvement, like `paper_effect`) against the paper's."""
    if measured is None:
        return "not run"
    suffix = "" if measured.low is not None else " (single run)"
    if measured.crosses_zero():
        return "inconclusive"
    if measured.low is not None and (measured.high < 0 if paper_effect > 0 else measured.low > 0):
        return "not reproduced"
    if measured.mean * math.copysign(1, paper_effect) <= 0:
        return "not reproduced" + suffix
    if abs(measured.mean) >= 0.5 * abs(paper_effect):
        return "reproduced" + suffix
    return "direction only" + suffix


@dataclass(frozen=True)
class Claim:
    name: str
    text: str
    paper: str
    variant: str  # the run that removes the feature
    metric: str | None  # error metric whose increase without the feature is the effect
    paper_effect: float  # in the metric's units (error fraction), positive = the feature helps


CLAIMS = (
    Claim("LRN", "Response normalization reduces our top-1 and top-5 error rates by 1.4% and 1.2%",
          "Sec. 3.3", "no_lrn", "top1_error", 0.014),
    Claim("LRN (top-5)", "", "Sec. 3.3", "no_lrn", "top5_error", 0.012),
    Claim("Overlapping pooling", "reduces the top-1 and top-5 error rates by 0.4% and 0.3%",
          "Sec. 3.4", "no_overlap_pool", "top1_error", 0.004),
    Claim("Overlapping pooling (top-5)", "", "Sec. 3.4", "no_overlap_pool", "top5_error", 0.003),
    Claim("PCA lighting", "reduces the top-1 error rate by over 1%", "Sec. 4.1",
          "no_pca_lighting", "top1_error", 0.01),
    Claim("Two towers", "reduces our top-1 and top-5 error rates by 1.7% and 1.2% (vs one GPU, half kernels)",
          "Sec. 3.2", "one_tower", "top1_error", 0.017),
    Claim("Two towers (top-5)", "", "Sec. 3.2", "one_tower", "top5_error", 0.012),
)  # fmt: skip


@dataclass
class Report:
    markdown: Path
    files: list[Path] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)

    def flat_metrics(self) -> dict[str, float]:
        flat = {}
        for row in self.rows:
            for key in ("top1_error", "top5_error", "ten_crop_top1_error"):
                if row.get(key) is not None:
                    flat[f"{row['variant']}.{key}"] = row[key]
        return flat


def variant_rows(runs: list[RunResult], top_k: int) -> list[dict]:
    rows = []
    for variant in sorted({run.variant for run in runs}, key=lambda name: (name != BASELINE, name)):
        members = [run for run in runs if run.variant == variant]
        row = {"variant": variant, "seeds": len(members)}
        for key in ("top1_error", f"top{top_k}_error", "ten_crop_top1_error", f"ten_crop_top{top_k}_error"):
            estimate = Estimate.of([run.metrics.get(key) for run in members])
            row[key] = estimate.mean if estimate else None
        gap = Estimate.of([run.train_val_gap() for run in members])
        row["train_val_gap"] = gap.mean if gap else None
        reached = [run.epochs_to() for run in members]
        epochs = [epoch for epoch, _ in reached if epoch is not None]
        row["epochs_to_25"] = float(np.mean(epochs)) if len(epochs) == len(members) else None
        row["seconds_to_25"] = (
            float(np.mean([s for _, s in reached])) if len(epochs) == len(members) else None
        )
        if variant != BASELINE:
            delta = paired_delta(runs, variant, "top1_error")
            row["delta_top1"] = delta.text(unit=" pt") if delta else "no baseline"
            delta5 = paired_delta(runs, variant, f"top{top_k}_error")
            row[f"delta_top{top_k}"] = delta5.text(unit=" pt") if delta5 else "no baseline"
        rows.append(row)
    return rows


def claim_rows(runs: list[RunResult], top_k: int, figure1: dict | None = None) -> list[dict]:
    rows = []
    for claim in CLAIMS:
        metric = claim.metric.replace("top5", f"top{top_k}")
        measured = paired_delta(runs, claim.variant, metric)
        rows.append(
            _claim_row(
                claim.name,
                claim.text,
                claim.paper,
                f"{claim.paper_effect * 100:.1f} pt",
                measured,
                claim.paper_effect,
                f"{claim.variant} - baseline, {metric}",
            )
        )
    ten_crop = Estimate.of(
        [
            run.metrics["top1_error"] - run.metrics["ten_crop_top1_error"]
            for run in runs
            if run.variant == BASELINE and "ten_crop_top1_error" in run.metrics
        ]
    )
    rows.append(
        _claim_row(
            "10-crop",
            "averaging the predictions of ten patches",
            "Sec. 4.1",
            "1.5 pt",
            ten_crop,
            0.015,
            "baseline centre - 10-crop, top1_error",
        )
    )
    rows.append(_figure1_claim(figure1))
    rows.append(_relu_claim(runs))
    rows.append(_dropout_claim(runs))
    rows.append(_dropout_convergence_claim(runs))
    return rows


def _claim_row(name, text, section, paper, measured: Estimate | None, paper_effect, how) -> dict:
    return {
        "claim": name, "paper_text": text, "section": section, "paper": paper,
        "measured": measured.text(unit=" pt") if measured else "not run",
        "measured_mean": measured.mean if measured else None,
        "verdict": verdict(measured, paper_effect), "how": how,
    }  # fmt: skip


def _epoch_ratio(runs: list[RunResult], slower: str, faster: str) -> Estimate | None:
    """log(epochs to 25% train error of `slower` / of `faster`), paired by seed."""
    by_seed = {(run.variant, run.seed): run for run in runs}
    ratios = []
    for (variant, seed), run in by_seed.items():
        if variant == slower and (faster, seed) in by_seed:
            slow_epochs, _ = run.epochs_to()
            fast_epochs, _ = by_seed[(faster, seed)].epochs_to()
            if slow_epochs and fast_epochs:
                ratios.append(math.log(slow_epochs / fast_epochs))
    return Estimate.of(ratios)


def _ratio_text(measured: Estimate | None) -> str:
    if measured is None:
        return "not run or 25% not reached"
    if measured.low is None:
        return f"{math.exp(measured.mean):.1f}x (single run)"
    return f"{math.exp(measured.mean):.1f}x [{math.exp(measured.low):.1f}x, {math.exp(measured.high):.1f}x]"


def _relu_claim(runs: list[RunResult]) -> dict:
    measured = _epoch_ratio(runs, slower="tanh", faster=BASELINE)
    row = _claim_row("ReLU", "reaches 25% training error six times faster than tanh", "Sec. 3.1", "6x",
                     measured, math.log(6.0), "epochs to 25% train error, tanh / relu (see also figure1)")  # fmt: skip
    row["measured"] = _ratio_text(measured)
    return row


def _dropout_convergence_claim(runs: list[RunResult]) -> dict:
    measured = _epoch_ratio(runs, slower=BASELINE, faster="no_dropout")
    row = _claim_row("Dropout (iterations)", "dropout roughly doubles the number of iterations required to converge",
                     "Sec. 4.2", "2x", measured, math.log(2.0),
                     "epochs to 25% train error, baseline / no_dropout")  # fmt: skip
    row["measured"] = _ratio_text(measured)
    return row


def _figure1_claim(figure1: dict | None) -> dict:
    speedup = figure1 and figure1.get("speedup")
    measured = Estimate(math.log(speedup), 1) if speedup else None
    row = _claim_row("ReLU (Figure 1)", "a four-layer CNN with ReLUs reaches 25% training error six times faster",
                     "Sec. 3.1, Fig. 1", "6x", measured, math.log(6.0),
                     "epochs to 25% train error, tanh / relu, four-layer net at 32x32, lr tuned per activation")
    if figure1 is None:
        row["measured"] = "not run"
    elif not speedup:
        row["measured"] = f"25% not reached (epochs: {figure1['epochs_to_target']})"
    else:
        epochs = figure1["epochs_to_target"]
        row["measured"] = f"{speedup:.1f}x (relu {epochs['relu']}, tanh {epochs['tanh']} epochs; single run)"
    return row


def _dropout_claim(runs: list[RunResult]) -> dict:
    gap = paired_delta(runs, "no_dropout", lambda run: run.train_val_gap())
    row = _claim_row(
        "Dropout",
        "without dropout, our network exhibits substantial overfitting",
        "Sec. 4.2",
        "gap grows",
        gap,
        0.01,
        "no_dropout - baseline, final val - train top-1 error",
    )
    return row


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
    claims = claim_rows(runs, top_k, figure1)
    report = Report(markdown=folder / "ablations.md", rows=rows, claims=claims)
    lines = [
        "# Ablation study", "",
        f"{len(runs)} runs, seeds per variant: {sorted({run.seed for run in runs})}. Errors in %, "
        f"deltas in points vs baseline (95% interval over seeds).", "",
        f"| variant | seeds | top-1 | top-{top_k} | 10-crop top-1 | 10-crop top-{top_k} | train-val gap | "
        f"epochs to 25% | seconds to 25% | delta top-1 | delta top-{top_k} |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['seeds']} | {_fmt(row['top1_error'])} | {_fmt(row[f'top{top_k}_error'])} | "
            f"{_fmt(row['ten_crop_top1_error'])} | {_fmt(row[f'ten_crop_top{top_k}_error'])} | "
            f"{_fmt(row['train_val_gap'])} | {_fmt(row['epochs_to_25'], False)} | "
            f"{_fmt(row['seconds_to_25'], False)} | {row.get('delta_top1', '')} | "
            f"{row.get(f'delta_top{top_k}', '')} |"
        )
    lines += [
        "",
        "## Paper claims",
        "",
        VERDICT_RULE,
        "",
        "| claim | paper | paper's effect | measured effect | verdict | measured as |",
        "|---|---|---|---|---|---|",
    ]
    for claim in claims:
        lines.append(
            f"| {claim['claim']} | {claim['section']} | {claim['paper']} | {claim['measured']} | "
            f"**{claim['verdict']}** | {claim['how']} |"
        )
    lines += ["", "![curves](curves.png)", ""]
    if figure1:
        lines += ["![Figure 1: ReLU (solid) vs tanh (dashed)](figure1/figure1.png)", ""]
    lines += tracked_section(tracked)
    report.markdown.write_text("\n".join(lines))
    json_path = folder / "ablations.json"
    summary = {"variants": rows, "claims": claims, "tracked_runs": tracked or []}
    json_path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    report.files = [report.markdown, json_path, *write_curves(runs, folder)]
    return report
