"""Loading a folder of runs: each replicate's four result files, read and checked, and copying them out.

A runs folder holds one `<variant>-s<seed>/` folder per replicate with RUN_FILES in it (docs/study/runs/). The
DVC workspace splits the same files over two parents: run.json under models/, the rest under reports/runs/.
The names, and run.json's record, are alexnet.run_identity's.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet.run_identity import (
    HISTORY_FILE,
    METRICS_FILE,
    PER_IMAGE_FILE,
    RUN_FILE,
    RUN_FILES,
    RunRecord,
    run_name,
)

IMAGE_IDENTITY = ("index", "label")  # per_image.csv columns that name an image: rows pair on them
TARGET_TRAIN_ERROR = 0.25  # Sec. 3.1, Fig. 1: epochs to reach 25% training error


class RunsError(ValueError):
    """A runs folder that cannot be read: one line naming the file and the fix."""


@dataclass
class RunResult:
    name: str
    variant: str
    seed: int
    metrics: dict[str, float]
    history: list[dict[str, float]]
    mlflow_run_id: str | None = None
    per_image: dict[str, np.ndarray] | None = None  # per_image.csv's columns
    data_hash: str | None = None  # run.json: the prepared data it trained and was evaluated on

    @property
    def epochs(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    def epochs_to(self, error: float = TARGET_TRAIN_ERROR) -> tuple[int | None, float | None]:
        """First epoch (and cumulative wall seconds) whose inference-mode training top-1 error is <= `error`."""
        seconds = 0.0
        for row in self.history:
            seconds += row.get("seconds", 0.0)
            if _finite(row.get("train_eval_top1_error")) and row["train_eval_top1_error"] <= error:
                return int(row["epoch"]), seconds
        return None, None

    def train_val_gap(self) -> float | None:
        return train_val_gap(self.history)


def train_val_gap(history: list[dict[str, float]]) -> float | None:
    """The overfitting gap (Sec. 4.2): the last epoch's val top-1 error minus its training top-1 error measured
    in inference mode (no dropout, no augmentation) on a fixed train subset. The one definition, used by the
    report and by MLflow's key column. None without that measurement (train.train_error_images: 0)."""
    if not history or not _finite(history[-1].get("train_eval_top1_error")):
        return None
    return history[-1]["val_top1_error"] - history[-1]["train_eval_top1_error"]


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def read_history(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def read_per_image(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not set(IMAGE_IDENTITY) <= set(rows[0]):
        raise RunsError(f"{path}: no rows or no {'/'.join(IMAGE_IDENTITY)} columns; re-run its evaluate@ stage")
    return {key: np.array([int(row[key]) for row in rows]) for key in rows[0]}


def _read_run(name: str, files: dict[str, Path]) -> RunResult:
    for path in files.values():
        if not path.is_file():
            raise RunsError(
                f"{path}: missing; every run folder needs {', '.join(RUN_FILES)} "
                "(copy them with `alexnet export-runs`, or re-run its train@/evaluate@ stages)"
            )
    identity = RunRecord.read(files[RUN_FILE])
    metrics = json.loads(files[METRICS_FILE].read_text())
    if "classes" not in metrics:
        raise RunsError(
            f"{files[METRICS_FILE]}: no `classes` (it decides whether top-5 claims are testable); "
            "re-run its evaluate@ stage, which writes it"
        )
    expected = run_name(identity.variant, identity.seed)
    if expected != name:
        raise RunsError(f"{files[RUN_FILE]}: names run {expected}, but its folder is {name}; rename the folder")
    return RunResult(name, identity.variant, identity.seed, metrics, read_history(files[HISTORY_FILE]),
                     identity.mlflow_run_id, read_per_image(files[PER_IMAGE_FILE]), identity.data_hash)  # fmt: skip


def load_runs(runs: Path, models: Path | None = None, variants: list[str] | None = None) -> list[RunResult]:
    """Every run under `runs` (one folder each), or only those of `variants`. `models`: take run.json from
    models/<name>/ instead (the DVC workspace's layout, where run.json is train@'s output); a folder without
    run.json there is not a run."""
    if not runs.is_dir():
        raise RunsError(f"{runs}: no such folder of runs; run train and evaluate first (dvc repro), or give the folder "
                        "holding <variant>-s<seed>/ folders")
    identities = sorted((models if models is not None else runs).glob(f"*/{RUN_FILE}"))
    if variants is not None:
        identities = [path for path in identities if RunRecord.read(path).variant in variants]
    if not identities:
        where = models if models is not None else runs
        raise RunsError(f"{where}: no <variant>-s<seed>/{RUN_FILE} (of variants {variants or 'any'}); "
                        "run train and evaluate first")  # fmt: skip
    loaded = []
    for identity in identities:
        name = identity.parent.name
        files = {file: runs / name / file for file in RUN_FILES} | {RUN_FILE: identity}
        loaded.append(_read_run(name, files))
        _check_pairs(loaded[0], loaded[-1], files)
    return loaded


def _check_pairs(first: RunResult, run: RunResult, files: dict[str, Path]) -> None:
    """Runs pair image by image only if they used the same prepared data and every per_image.csv lists the same
    val images in the same order."""
    if first.data_hash and run.data_hash and first.data_hash != run.data_hash:
        raise RunsError(f"{files[RUN_FILE]}: data_hash {run.data_hash} differs from {first.name}'s "
                        f"{first.data_hash}, so the runs do not pair; train every run on the same prepared data")
    if not all(np.array_equal(first.per_image[key], run.per_image[key]) for key in IMAGE_IDENTITY):
        raise RunsError(f"{files[PER_IMAGE_FILE]}: its images ({', '.join(IMAGE_IDENTITY)}) differ from "
                        f"{first.name}'s, so the runs do not pair; evaluate every run on the same prepared data "
                        "(re-run its evaluate@ stage)")


def export_runs(workspace: Path, out: Path, variants: list[str] | None = None) -> list[Path]:
    """Copy a DVC workspace's runs (models/<name>/run.json, reports/runs/<name>/...) into `out/<name>/` with
    exactly RUN_FILES: the results a report is rendered from, without models or figures. Checked by loading."""
    chosen = load_runs(workspace / "reports" / "runs", workspace / "models", variants)
    written = []
    for run in chosen:
        folder = out / run.name
        folder.mkdir(parents=True, exist_ok=True)
        for file in RUN_FILES:
            parent = workspace / ("models" if file == RUN_FILE else "reports/runs")
            written.append(Path(shutil.copyfile(parent / run.name / file, folder / file)))
    return written
