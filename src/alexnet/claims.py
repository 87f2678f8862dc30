"""The paper's claims (paper_claims.py) estimated over paired seeds, and the two verdicts: direction and magnitude.

Every effect is signed so that positive is the paper's side: an error difference (the run without the feature
minus the run with it, a fraction), or the log of an epochs ratio. stats.py does the arithmetic; reports.py
writes down what this module decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from alexnet import stats
from alexnet.paper_claims import CLAIMS, Claim
from alexnet.run_identity import BASELINE
from alexnet.runs import TARGET_TRAIN_ERROR, RunResult
from alexnet.stats import Estimate

FAMILY_ALPHA = 0.05  # Holm's family-wise error rate, over the claims tested (and over the magnitudes tested)
TOP5_MIN_CLASSES = 100  # below this, top-5 error sits near its floor (5 of 10 classes is half the labels)
EPOCH_UNCERTAINTY = 1  # an epoch count is known to +-1 epoch: the error is measured once per epoch, and noisily
MIN_EPOCHS = 0.5  # the lower end of a count of 1 epoch
FIGURE1_INIT_DEFAULT = "glorot"  # figure1.json files from before figure1.inits trained Glorot-initialised nets


@dataclass
class ClaimResult:
    claim: Claim
    estimate: Estimate | None
    how: str
    notes: list[str] = field(default_factory=list)
    untestable: str | None = None  # why the claim cannot be tested here ("10 classes")
    epochs: int | None = None  # ratio claims: the most epochs a run trained (a censored bound's horizon)
    holm_p: float | None = None
    magnitude_holm_p: float | None = None

    @property
    def direction(self) -> str:
        return direction(self.estimate, self.untestable)

    @property
    def magnitude(self) -> str:
        return magnitude(self.estimate, self.claim) if self.untestable is None else "-"

    @property
    def tested(self) -> bool:
        """Counted in the claims tested (Holm's family): >= 2 seeds, testable, not an extra."""
        return self.claim.extra is None and self.untestable is None and self.estimate is not None and (
            self.estimate.seeds >= 2)  # fmt: skip

    @property
    def magnitude_tested(self) -> bool:
        return self.tested and self.claim.paper_gives_number and self.estimate.se is not None

    @property
    def p_value(self) -> float | None:
        return None if self.estimate is None else self.estimate.p_value()

    @property
    def magnitude_p(self) -> float | None:
        if not self.claim.paper_gives_number or self.estimate is None:
            return None
        return self.estimate.p_value(self.claim.paper_effect, self.claim.paper_at_least)

    @property
    def holm_survives(self) -> bool | None:
        return None if self.holm_p is None else self.direction in DECISIVE and self.holm_p < FAMILY_ALPHA

    @property
    def magnitude_holm_survives(self) -> bool | None:
        if self.magnitude_holm_p is None:
            return None
        return self.magnitude in MAGNITUDE_DIFFERS and self.magnitude_holm_p < FAMILY_ALPHA

    @property
    def _powered(self) -> bool:
        estimate = self.estimate
        return estimate is not None and estimate.sd is not None and not estimate.censored and estimate.seeds >= 2

    @property
    def power(self) -> float | None:
        """Power now (these seeds) at the paper's effect, from the noncentral t on the measured sd."""
        if not self._powered or not self.estimate.sd:
            return None
        return stats.power(self.claim.paper_effect, self.estimate.sd, self.estimate.seeds, self.estimate.df)

    def seeds_for_power(self, upper_sd: bool = False) -> int | None:
        """Seeds for 80% power at the paper's effect, with the measured sd or its upper 80% confidence bound.
        A pooled estimate keeps its design: df = (V - 1)(seeds - 1) over the same V variants."""
        if not self._powered:
            return None
        estimate = self.estimate
        sd = stats.sd_upper_bound(estimate.sd, estimate.df) if upper_sd else estimate.sd
        blocks = estimate.df // (estimate.seeds - 1)
        return stats.seeds_for_power(self.claim.paper_effect, sd, lambda seeds: blocks * (seeds - 1))


DECISIVE = ("reproduced", "opposite")
MAGNITUDE_DIFFERS = ("smaller than the paper", "larger than the paper")


def direction(estimate: Estimate | None, untestable: str | None = None) -> str:
    """The direction rule: the 95% interval against zero, with positive on the paper's side."""
    if untestable:
        return f"not testable ({untestable})"
    if estimate is None:
        return "not run"
    if estimate.no_interval:
        return f"inconclusive ({estimate.no_interval})"
    if estimate.low > 0:
        return "reproduced"
    if estimate.high < 0:
        return "opposite"
    return "inconclusive (censored)" if estimate.censored else "inconclusive"


def magnitude(estimate: Estimate | None, claim: Claim) -> str:
    """The magnitude rule: the 95% interval against the paper's number."""
    if estimate is None:
        return "-"
    if not claim.paper_gives_number:
        return "not tested (no number)"
    if estimate.no_interval:
        return "-"
    if estimate.high < claim.paper_effect:
        return "smaller than the paper"
    if estimate.low > claim.paper_effect and not claim.paper_at_least:
        return "larger than the paper"
    return "consistent"


# -- estimates ----------------------------------------------------------------------------------------------
class Contrasts:
    """The "variant minus baseline" estimates of one per-run value (top-1 error, the train-val gap...), from the
    pooled seed-variance model when it holds, else from the variant's own paired seeds, with a note saying so."""

    def __init__(self, runs: list[RunResult], value):
        self.table: dict[str, dict[int, float]] = {}
        for run in runs:
            result = value(run)
            if result is not None and math.isfinite(result):
                self.table.setdefault(run.variant, {})[run.seed] = float(result)
        self.model = stats.pooled_model(self.table, BASELINE) if BASELINE in self.table else None

    def estimate(self, variant: str, against: str = BASELINE) -> tuple[Estimate | None, str]:
        model = self.model
        if model and model.pooling_holds and against == BASELINE and variant in model.variants:
            return model.contrast(variant, BASELINE), (
                f"pooled seed variance over {len(model.variants)} variants x {len(model.seeds)} seeds, "
                f"df {model.df}")  # fmt: skip
        mine, theirs = self.table.get(variant, {}), self.table.get(against, {})
        estimate = stats.t_interval([mine[seed] - theirs[seed] for seed in sorted(mine) if seed in theirs])
        if model and not model.pooling_holds:
            return estimate, (f"per-claim interval: Brown-Forsythe rejects one seed variance for all variants "
                              f"(p = {model.homogeneity_p:.3f})")  # fmt: skip
        return estimate, "per-claim paired t"


def evaluate_claims(runs: list[RunResult], figure1: dict | None = None, holm: bool = True) -> list[ClaimResult]:
    """Every claim's estimate and verdicts, then Holm over the claims tested (direction) and over the magnitudes
    tested. holm=False leaves Holm to the caller: a report over several datasets runs it over all of them."""
    classes = min(int(run.metrics["classes"]) for run in runs) if runs else None
    contrasts = {
        "top1": Contrasts(runs, lambda run: run.metrics.get("top1_error")),
        "top5": Contrasts(runs, lambda run: run.metrics.get("top5_error")),
        "gap": Contrasts(runs, RunResult.train_val_gap),
    }
    results = []
    for claim in CLAIMS:
        if claim.top5 and classes is not None and classes < TOP5_MIN_CLASSES:
            how = f"top-5 error of {classes} classes sits near its floor"
            results.append(ClaimResult(claim, None, how, untestable=f"{classes} classes"))
            continue
        if claim.kind == "figure1":
            results += figure1_claims(claim, figure1)
            continue
        if claim.kind == "ratio":
            result = ratio_claim(claim, runs)
        elif claim.kind == "matched_ratio":
            result = matched_ratio_claim(claim, runs)
        elif claim.kind == "ten_crop":
            result = ten_crop_claim(claim, runs)
        else:
            result = contrast_claim(claim, contrasts["gap" if claim.kind == "gap" else claim.metric])
        if claim.extra:
            result.notes.insert(0, claim.extra)
        results.append(result)
    if holm:
        apply_holm(results)
    return results


def apply_holm(results: list[ClaimResult]) -> None:
    tested = [result for result in results if result.tested]
    for result, adjusted in zip(tested, stats.holm([r.p_value or 1.0 for r in tested]), strict=True):
        result.holm_p = adjusted
    sized = [result for result in results if result.magnitude_tested]
    for result, adjusted in zip(sized, stats.holm([r.magnitude_p for r in sized]), strict=True):
        result.magnitude_holm_p = adjusted


def contrast_claim(claim: Claim, contrasts: Contrasts) -> ClaimResult:
    estimate, interval = contrasts.estimate(claim.variant, claim.against)
    interval = interval if estimate is not None else "paired by seed"
    if claim.kind == "gap":
        how = (f"{claim.variant} - {claim.against} of the final val top-1 error minus the final inference-mode "
               f"train top-1 error; {interval}")  # fmt: skip
    else:
        how = f"{claim.variant} - {claim.against}, val {claim.metric}_error; {interval}"
    return ClaimResult(claim, estimate, how)


def ten_crop_claim(claim: Claim, runs: list[RunResult]) -> ClaimResult:
    """Centre-crop minus 10-crop error of the same models: a t-interval over the per-seed gains (seed variance is
    the larger part), with the two-level bootstrap (seeds, then val images) beside it in the notes."""
    centre, ten = f"{claim.metric}_error", f"ten_crop_{claim.metric}_error"
    members = sorted((run for run in runs if run.variant == claim.variant), key=lambda run: run.seed)
    gains = [run.metrics[centre] - run.metrics[ten] for run in members if {centre, ten} <= set(run.metrics)]
    how = f"{claim.variant}: centre-crop minus 10-crop val {claim.metric} error of the same models; t over seeds"
    result = ClaimResult(claim, stats.t_interval(gains), how)
    columns = (f"{claim.metric}_correct", f"ten_crop_{claim.metric}_correct")
    tables = [run.per_image for run in members if set(columns) <= set(run.per_image or {})]
    if len(tables) >= 2 and len(tables) == len(members):
        differences = np.stack([table[columns[1]] - table[columns[0]] for table in tables])
        mean, low, high = stats.two_level_bootstrap(differences)
        result.notes.append(f"two-level bootstrap (seeds, then {differences.shape[1]} val images each; "
                            f"{stats.BOOTSTRAP_RESAMPLES} resamples): {mean * 100:+.2f} pt "
                            f"[{low * 100:+.2f}, {high * 100:+.2f}]")  # fmt: skip
    return result


def epoch_range(reached: int | None, ran: int) -> tuple[float, float]:
    """The epochs a run took to reach its target, as a range: a count +-1 epoch, or (ran, inf) if it never did."""
    if reached is None:
        return float(ran), math.inf
    return max(reached - EPOCH_UNCERTAINTY, MIN_EPOCHS), float(reached + EPOCH_UNCERTAINTY)


def log_ratio_estimate(pairs: list[tuple[int | None, int, int | None, int]]) -> tuple[Estimate | None, int]:
    """log(epochs of the slow run / epochs of the fast run) per seed, from (slow reached or None, slow epochs run,
    fast reached or None, fast epochs run), each count known to +-1 epoch: an interval-censored t. A run that
    never reached the target makes the ratio a bound. Also returns the seeds where neither run reached it."""
    lows, highs, neither = [], [], 0
    for slow_reached, slow_ran, fast_reached, fast_ran in pairs:
        if slow_reached is None and fast_reached is None:
            neither += 1
            continue
        slow, fast = epoch_range(slow_reached, slow_ran), epoch_range(fast_reached, fast_ran)
        lows.append(math.log(slow[0]) - math.log(fast[1]))
        highs.append(math.log(slow[1]) - math.log(fast[0]))
    return stats.interval_censored_t(lows, highs), neither


def _ratio_notes(rows, names: list[str], epochs: int, neither: int) -> list[str]:
    censored = [name for name, (reached, _) in zip(names, rows, strict=True) if reached is None]
    notes = []
    if censored:
        notes.append(f"never reached {TARGET_TRAIN_ERROR:.0%} within {epochs} epochs: {', '.join(censored)}; "
                     "it enters at that bound")  # fmt: skip
    if neither:
        notes.append(f"{neither} seeds: neither run reached {TARGET_TRAIN_ERROR:.0%}, left out")
    return notes


def ratio_claim(claim: Claim, runs: list[RunResult]) -> ClaimResult:
    by_seed = {(run.variant, run.seed): run for run in runs}
    seeds = sorted(seed for variant, seed in by_seed if variant == claim.variant and (claim.against, seed) in by_seed)
    slow = [by_seed[(claim.variant, seed)] for seed in seeds]
    fast = [by_seed[(claim.against, seed)] for seed in seeds]
    pairs = [(s.epochs_to()[0], s.epochs, f.epochs_to()[0], f.epochs) for s, f in zip(slow, fast, strict=True)]
    estimate, neither = log_ratio_estimate(pairs)
    how = (f"epochs to {TARGET_TRAIN_ERROR:.0%} inference-mode train top-1 error, {claim.variant} / "
           f"{claim.against}, log ratio paired by seed, counts +-{EPOCH_UNCERTAINTY} epoch")  # fmt: skip
    epochs = max((run.epochs for run in slow + fast), default=None)
    rows = [(run.epochs_to()[0], run.epochs) for run in slow + fast]
    notes = _ratio_notes(rows, [f"{run.name} ({run.epochs})" for run in slow + fast], epochs, neither)
    untestable = None
    if seeds and neither == len(seeds):
        untestable = f"neither reached {TARGET_TRAIN_ERROR:.0%} in {epochs} epochs"
    return ClaimResult(claim, None if untestable else estimate, how, notes, untestable=untestable, epochs=epochs)


def figure1_claims(claim: Claim, figure1: dict | None) -> list[ClaimResult]:
    """One Figure 1 row per initialisation in figure1.json (`by_init`; the paper gives none, so each is its own
    test), or one "not run" row without it."""
    if not figure1:
        return [figure1_claim(claim, None)]
    by_init = figure1.get("by_init") or {figure1.get("init", FIGURE1_INIT_DEFAULT): figure1}
    return [figure1_claim(replace(claim, key=f"{claim.key}_{init}", name=f"{claim.name[:-1]}, {init} init)"),
                          {**figure1, **part, "init": init}) for init, part in by_init.items()]  # fmt: skip


def figure1_claim(claim: Claim, figure1: dict | None) -> ClaimResult:
    """Figure 1's tanh / relu epochs to 25% training error, per seed of one init's results in figure1.json."""
    given = bool(figure1) and "tuning_seed" in figure1 and figure1["tuning_seed"] is None
    rate = "lr given" if given else "lr swept per activation"
    how = (f"epochs to 25% training error, tanh / relu, four-layer net, {rate}; log ratio over seeds, counts "
           f"+-{EPOCH_UNCERTAINTY} epoch")  # fmt: skip
    if not figure1:
        return ClaimResult(claim, None, how)
    seeds = figure1.get("seeds")
    if not isinstance(seeds, list) or not seeds:
        raise ValueError("figure1.json: no per-seed results (`seeds`), an older format; re-run the figure1 stage")
    pairs = [(entry["epochs_to_target"].get("tanh"), int(entry["epochs"]), entry["epochs_to_target"].get("relu"),
              int(entry["epochs"])) for entry in seeds]  # fmt: skip
    estimate, neither = log_ratio_estimate(pairs)
    epochs = max(pair[1] for pair in pairs)
    medians = figure1.get("median_epochs_to_target", {})
    shown = {name: f"> {epochs}" if medians.get(name) is None else f"{medians[name]:g}" for name in ("relu", "tanh")}
    notes = [f"median epochs to 25%: relu {shown['relu']}, tanh {shown['tanh']}; data {figure1.get('data')}"]
    rates = figure1.get("best_learning_rate")
    if rates and given:
        notes.append(f"one rate given (params figure1.learning_rates), no sweep: relu {rates.get('relu')}, "
                     f"tanh {rates.get('tanh')}")  # fmt: skip
    elif rates and "tuning_seed" in figure1:
        notes.append(f"rates chosen on tuning seed {figure1['tuning_seed']} (not an estimate seed): relu "
                     f"{rates.get('relu')}, tanh {rates.get('tanh')}")  # fmt: skip
    rows = [(entry["epochs_to_target"].get(name), epochs) for entry in seeds for name in ("relu", "tanh")]
    names = [f"seed {entry['seed']} {name}" for entry in seeds for name in ("relu", "tanh")]
    notes += _ratio_notes(rows, names, epochs, neither)
    return ClaimResult(claim, estimate, how, notes, epochs=epochs)


def first_epoch_at(run: RunResult, error: float) -> int | None:
    """The first epoch whose inference-mode training top-1 error is <= `error` (None: never)."""
    return run.epochs_to(error)[0]


def matched_ratio_claim(claim: Claim, runs: list[RunResult]) -> ClaimResult:
    """Epochs to the lowest inference-mode training error the slow run reached, slow / fast, per seed: the
    speed comparison the data allow when neither run reaches 25%. The slow run reaches its own best by
    construction; the fast run, if it never does, makes the ratio a bound below."""
    by_seed = {(run.variant, run.seed): run for run in runs}
    seeds = sorted(seed for variant, seed in by_seed if variant == claim.variant and (claim.against, seed) in by_seed)
    pairs, targets = [], []
    for seed in seeds:
        slow, fast = by_seed[(claim.variant, seed)], by_seed[(claim.against, seed)]
        errors = [row.get("train_eval_top1_error") for row in slow.history]
        errors = [error for error in errors if error is not None and math.isfinite(error)]
        if not errors:
            continue
        target = min(errors)
        targets.append(target)
        pairs.append((first_epoch_at(slow, target), slow.epochs, first_epoch_at(fast, target), fast.epochs))
    estimate, _ = log_ratio_estimate(pairs)
    how = (f"epochs to the lowest inference-mode train top-1 error {claim.variant} reached (per seed), "
           f"{claim.variant} / {claim.against}, log ratio paired by seed, counts +-{EPOCH_UNCERTAINTY} epoch")
    notes = [f"targets per seed: {', '.join(f'{target:.1%}' for target in targets)}"] if targets else []
    return ClaimResult(claim, estimate, how, notes, epochs=max((run.epochs for run in runs), default=None))
