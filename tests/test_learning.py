"""Training learns: a wrong label, a misaligned shard or a broken input pipeline fails these.

Chance is 1 - 1/classes (83% error on the synthetic profile's 6 classes, 50% on 2 real classes).

CPUs run different kernels (AVX-512 or AVX2 only, oneDNN on or off), so one seed's trajectory differs
between machines. Each test here therefore pins its precision (float32: native on every x86 CPU), asserts
on the last two epochs (never the best one), and uses a bound measured over seeds and kernel paths (the
tables below). `make test-kernels`, which .ci/run runs, repeats the fast test with oneDNN capped at AVX2
(`ONEDNN_MAX_CPU_ISA=AVX2`) and with oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`).
"""

from __future__ import annotations

import os

import pytest
from pipeline_copy import read_params

from alexnet.config import TrackingConfig, parse

PINNED_PRECISION = "float32"

# The synthetic profile (profiles/synthetic.params), final val top-1 error in % (180 val images, 0.6% each),
# measured at 94dc2b0 on 2 cores of an AMD EPYC with AVX512-BF16 (train() as below, precision forced), seeds 0-4:
#
#   precision       kernel path                   s0   s1   s2   s3   s4   worst of last two epochs
#   float32         as is (oneDNN on, AVX-512)   1.1  0.0  0.6  1.7  1.1  1.7
#   float32         ONEDNN_MAX_CPU_ISA=AVX2      1.1  0.6  0.0  1.1  0.6  1.1
#   float32         TF_ENABLE_ONEDNN_OPTS=0      0.6  0.6  0.6  1.1  2.2  2.2
#   mixed_bfloat16  as is (oneDNN on, AVX-512)   1.1  0.6  1.7  0.6  1.7  1.7
#   mixed_bfloat16  ONEDNN_MAX_CPU_ISA=AVX2      does not run (*)
#   mixed_bfloat16  TF_ENABLE_ONEDNN_OPTS=0      1.1  0.6  1.1  1.7  1.7  2.2
#
# (*) An artefact of the emulation: TensorFlow sees this CPU's AVX512-BF16 and asks oneDNN, capped at AVX2, for
# a bfloat16 convolution it cannot build ("could not create a primitive descriptor"). A real AVX2-only CPU runs
# bfloat16 without oneDNN, TensorFlow's default there: the TF_ENABLE_ONEDNN_OPTS=0 row.
# Worst cell 2.2% against the 10% bound: a margin of 7.8 points (14 images). After the first rate drop
# (epochs 5-8) val error never rose by more than 1.1 points in any cell; before it, one cell (mixed_bfloat16 as
# is, seed 2) rose 6.7 points at epoch 4 and came back. Per-epoch data: docs/learning-tests/. The profile
# before (120 images per class, rate 0.01, one drop) ended seed 0 at 20% on an AVX2-only EPYC after a best of 4.4%.
SYNTHETIC_VAL_ERROR_BOUND = 0.10
SYNTHETIC_SEEDS_IN_SLOW_SUITE = [1, 2, 3, 4]

# Two Imagenette classes far apart in colour and layout (a fish held up vs a canopy in the sky), 12 epochs
# at 64 px, float32, val accuracy in % at epochs 11 and 12 (777 val images), same machine and commit:
#
#   kernel path                   seed 0       seed 1       seed 2
#   as is (oneDNN on, AVX-512)    93.4, 93.6   93.2, 93.0   93.4, 93.6
#   ONEDNN_MAX_CPU_ISA=AVX2       93.2, 93.0   93.2, 93.6   93.6, 93.2
#   TF_ENABLE_ONEDNN_OPTS=0       93.6, 93.6   92.0, 92.3   92.9, 92.8
#
# Worst 92.0% against the 85% bound: a margin of 7 points.
REAL_VAL_ACCURACY_BOUND = 0.85
REAL_CLASSES = ["n01440764", "n03888257"]  # tench, parachute


def kernel_path() -> str:
    """The TensorFlow CPU kernel settings this process runs under, as set in its environment."""
    settings = [f"{name}={os.environ[name]}" for name in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")
                if name in os.environ]  # fmt: skip
    return ", ".join(settings) or "TensorFlow's default for this CPU"


def _train(cfg, prepared, folder):
    """Train cfg's model on `prepared` with tracking off; the history rows (one per epoch)."""
    from alexnet.checkpoint import TrainingRun
    from alexnet.data.input import load_prepared
    from alexnet.tracking import Tracker
    from alexnet.training import train

    tracker = Tracker(TrackingConfig(**{**cfg.tracking.model_dump(), "enabled": False}))
    folder.mkdir(parents=True, exist_ok=True)
    run = TrainingRun(folder / "model.keras", folder / "history.csv", folder / "checkpoints", "learning-test")
    _, rows = train(cfg, load_prepared(prepared), run, tracker, state=None, verbose=0)
    return rows


def _ingest_and_preprocess(cfg, root):
    from alexnet.data.ingest import ingest
    from alexnet.data.preprocess import preprocess

    ingest(cfg.data, root / "raw", root / "work", progress=False)
    preprocess(cfg.preprocess, root / "raw", root / "prepared", progress=False)
    return root / "prepared"


def _last_two_val_errors(rows, seed) -> list[float]:
    errors = [round(row["val_top1_error"], 3) for row in rows]
    print(f"\nseed {seed}, {PINNED_PRECISION}, {kernel_path()}: val top-1 error by epoch: {errors}")
    return [row["val_top1_error"] for row in rows[-2:]]


def _synthetic_params(cache) -> dict:
    raw = read_params()
    raw["data"]["cache_dir"] = str(cache)
    raw["train"]["precision"] = PINNED_PRECISION
    return raw


@pytest.fixture(scope="module")
def synthetic_prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return _ingest_and_preprocess(parse(_synthetic_params(root / "cache"), variant="baseline", seed=0), root)


def _check_synthetic_seed(seed, prepared, folder):
    cfg = parse(_synthetic_params(folder / "cache"), variant="baseline", seed=seed)
    rows = _train(cfg, prepared, folder / "run")
    assert len(rows) == cfg.train.epochs
    last_two = _last_two_val_errors(rows, seed)
    assert max(last_two) <= SYNTHETIC_VAL_ERROR_BOUND, (seed, kernel_path(), rows[-2:])


def test_synthetic_profile_reaches_the_val_error_bound(synthetic_prepared, tmp_path):
    _check_synthetic_seed(0, synthetic_prepared, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SYNTHETIC_SEEDS_IN_SLOW_SUITE)
def test_synthetic_profile_reaches_the_val_error_bound_on_other_seeds(seed, synthetic_prepared, tmp_path):
    _check_synthetic_seed(seed, synthetic_prepared, tmp_path)


# Slow only because ingest unpacks the whole 130 MB archive and `make test` keeps its few-minute budget.
@pytest.mark.slow
def test_two_real_imagenette_classes_at_64px_reach_85_percent(tmp_path, imagenette_archive):
    from conftest import IMAGENETTE_224_SHA256

    raw = read_params(synthetic=False)
    raw["data"].update(
        source="folder", url=str(imagenette_archive), sha256=IMAGENETTE_224_SHA256, classes=REAL_CLASSES,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    raw["preprocess"].update(size=72, shards=2)
    raw["model"].update(width=0.25, fc_units=256)
    raw["train"].update(crop=64, batch_size=32, epochs=12, lr_patience=2, precision=PINNED_PRECISION)
    cfg = parse(raw, variant="baseline", seed=0)
    rows = _train(cfg, _ingest_and_preprocess(cfg, tmp_path), tmp_path / "run")
    last_two = _last_two_val_errors(rows, seed=0)
    assert min(1 - error for error in last_two) >= REAL_VAL_ACCURACY_BOUND, (kernel_path(), rows[-2:])
