"""Issue 24's documented profiles (dropout, Figure 1) and the shipped Figure 1 default: they parse, every key
exists, and what their comments promise (drop epochs, training counts, tuning seed apart) is what they set."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import pytest
from pipeline_copy import REPO, apply_profile, read_params

from alexnet.callbacks import StepSchedule
from alexnet.config import parse

DROPOUT = REPO / "profiles" / "dropout.params"
FIGURE1 = REPO / "profiles" / "figure1.params"


def profiled(path):
    """params.yaml's default profile with the file's overrides applied (every key must exist), validated."""
    return parse(apply_profile(read_params(synthetic=False), path), str(path.name))


def test_dropout_profile_trains_baseline_and_no_dropout_on_three_paired_seeds():
    cfg = profiled(DROPOUT)
    assert cfg.ablations.run == ["baseline", "no_dropout"] and len(cfg.ablations.seeds) >= 3
    raw = apply_profile(read_params(synthetic=False), DROPOUT)
    assert parse(raw, variant="baseline").model.dropout == 0.5
    assert parse(raw, variant="no_dropout").model.dropout == 0.0
    assert cfg.data.source == "imagenette" and cfg.train.crop == 64  # on the default profile's real data


def test_dropout_profile_drops_the_rate_where_its_comment_says():
    cfg, default = profiled(DROPOUT), parse(read_params(synthetic=False))
    text = DROPOUT.read_text()
    documented = [int(n) for n in re.search(r"drops the rate after epochs (\d+) and (\d+)", text).groups()]
    schedule = StepSchedule(cfg.train.learning_rate, cfg.train.lr_drop_factor, cfg.train.lr_steps, cfg.train.epochs)
    assert cfg.train.schedule == "step" and schedule.drop_after == documented
    assert f"train.epochs={cfg.train.epochs}" in text and 40 <= cfg.train.epochs <= 60  # the range
    # every drop on a whole epoch, and the high-rate phase alone longer than the whole default run
    steps = zip(cfg.train.lr_steps, documented, strict=True)
    assert all(fraction * cfg.train.epochs == drop for fraction, drop in steps)
    assert documented[0] > default.train.epochs
    rates = [schedule.rate(epoch) for epoch in range(cfg.train.epochs)]
    assert rates.index(min(rates)) == documented[-1]  # 0-based: epoch 37 (1-based) is the first at rate/100


def log_spaced(rates: list[float]) -> bool:
    steps = [math.log10(b / a) for a, b in zip(rates[:-1], rates[1:], strict=True)]
    return all(step > 0 for step in steps) and max(steps) - min(steps) < 0.1


def test_figure1_profile_sweeps_five_log_spaced_rates_on_a_tuning_seed_outside_three_seeds():
    cfg = profiled(FIGURE1).figure1
    assert len(cfg.learning_rates) >= 5 and log_spaced(list(cfg.learning_rates))
    assert len(cfg.seeds) >= 3 and cfg.tuning_seed not in cfg.seeds
    trainings = len(cfg.inits) * 2 * (len(cfg.learning_rates) + len(cfg.seeds))
    assert f"= {trainings} trainings" in FIGURE1.read_text()  # the cost the comment states


def test_the_default_figure1_trains_three_seeds_at_the_rate_the_committed_sweep_chose():
    """The default run gives Figure 1 one rate (issue 22: 45 min) instead of sweeping: the rate the study's
    5-rate sweep chose for both activations under both inits (docs/study/figure1/figure1.json)."""
    cfg = parse(read_params(synthetic=False)).figure1
    study = json.loads((REPO / "docs" / "study" / "figure1" / "figure1.json").read_text())
    assert len(study["learning_rates"]) >= 5
    chosen = {rate for measured in study["by_init"].values() for rate in measured["best_learning_rate"].values()}
    assert cfg.learning_rates == sorted(chosen) and len(cfg.learning_rates) == 1
    assert len(cfg.seeds) >= 3
    trainings = len(cfg.inits) * 2 * len(cfg.seeds)
    assert f"= {trainings} trainings" in (REPO / "params.yaml").read_text()  # the cost the comment states


def test_figure1_profile_measures_both_inits():
    assert profiled(FIGURE1).figure1.inits == ["glorot", "paper"]


def test_log_spaced_rejects_uneven_or_unsorted_rates():
    assert log_spaced([0.001, 0.003, 0.01, 0.03, 0.1])
    assert not log_spaced([0.001, 0.01, 0.02, 0.03, 0.1]) and not log_spaced([0.1, 0.03, 0.01])


@pytest.mark.parametrize(("target", "profile"), [("run-dropout", DROPOUT), ("run-figure1", FIGURE1)])
def test_make_targets_pass_every_profile_line_and_the_data_overrides(target, profile, tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    url = "https://mirror.example/imagenette2-160.tgz"
    result = subprocess.run(["make", "-n", target, f"IMAGENETTE={url}", f"VENV={tmp_path}/venv",
                             "IMAGENETTE_SHA256=" + "a" * 64], cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    command = next(line for line in result.stdout.splitlines() if "dvc exp run" in line)
    lines = [line for line in profile.read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(f"-S '{line}'" in command for line in lines)
    assert f"-S 'data.url={url}'" in command and f"-S data.sha256={'a' * 64}" in command
    assert command.endswith(" figure1") == (target == "run-figure1")  # Figure 1 alone, not the study


TINY100 = REPO / "profiles" / "tiny100.params"


def test_tiny100_profile_trains_every_top5_claims_variant_on_three_seeds():
    from alexnet.claims import TOP5_MIN_CLASSES
    from alexnet.paper_claims import CLAIMS

    cfg = profiled(TINY100)
    assert cfg.data.source == "tiny_imagenet" and cfg.train.crop < cfg.preprocess.size == 64
    assert len(cfg.ablations.seeds) >= 3 and cfg.ablations.run[0] == "baseline"
    top5 = {claim.variant for claim in CLAIMS if claim.top5}
    assert set(cfg.ablations.run) == top5 and TOP5_MIN_CLASSES <= 100  # 10-crop's variant is the baseline
    drops = StepSchedule(cfg.train.learning_rate, cfg.train.lr_drop_factor, cfg.train.lr_steps, cfg.train.epochs)
    assert re.search(rf"drops after epochs {drops.drop_after[0]} and {drops.drop_after[1]}", TINY100.read_text())


def test_make_run_tiny100_passes_the_profile_archive_and_seeds(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    url = "https://mirror.example/tiny-imagenet-100.zip"
    result = subprocess.run(["make", "-n", "run-tiny100", f"TINY={url}", f"VENV={tmp_path}/venv",
                             "TINY_SHA256=" + "b" * 64, "TINY_SEEDS=[0,1,2,3,4]"], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=True)  # fmt: skip
    command = " ".join(result.stdout.split("\\\n")).replace("\\\n", " ")
    command = next(line for line in command.splitlines() if "dvc exp run" in line)
    lines = [line for line in TINY100.read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(f"-S '{line}'" in command for line in lines)
    assert f"-S 'data.url={url}'" in command and f"-S data.sha256={'b' * 64}" in command
    assert "-S 'ablations.seeds=[0,1,2,3,4]'" in command
