"""A run's identity in one place: its name, its folders and file names, the typed run.json (RunRecord), its tags.

One run is one (variant, seed) replicate of the study, named `<variant>-s<seed>`. Its files, and the folders
dvc.yaml's outs list:

    models/<name>/          model.keras, run.json, checkpoints/ (last.keras, next.keras, state.json)  train@
    reports/runs/<name>/    history.csv                                                               train@
                            metrics.json, per_image.csv, per_class.csv, confusion.csv, figures/       evaluate@

A runs folder (docs/study/runs/) keeps RUN_FILES of each run side by side in one `<name>/` folder.
No TensorFlow, Keras or MLflow here: the report side and `alexnet predict` read runs without them.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from alexnet.config import PARAMS_FILE, store_root

BASELINE = "baseline"  # the variant every ablation is compared with (claims, the report, the champion)

# -- file names -------------------------------------------------------------------------------------------------
MODEL_FILE = "model.keras"  # train@: the trained model
RUN_FILE = "run.json"  # train@: the RunRecord below; its card fields also go beside the model logged to MLflow
CHECKPOINT_DIR = "checkpoints"  # train@ (persist): the resumable state of an unfinished training
CHECKPOINT_FILE = "last.keras"  # in checkpoints/: the model after the last finished epoch
NEXT_CHECKPOINT_FILE = "next.keras"  # in checkpoints/: written during validation; moved to last.keras with its state
STATE_FILE = "state.json"  # in checkpoints/: what last.keras does not hold (schedule, learning rate, history)
HISTORY_FILE = "history.csv"  # train@: one row per epoch
METRICS_FILE = "metrics.json"  # evaluate@: top-1/top-5, centre and 10-crop, and `classes`
PER_IMAGE_FILE = "per_image.csv"  # evaluate@: one row per val image, in the val split's order
PER_CLASS_FILE = "per_class.csv"  # evaluate@: accuracy per class
CONFUSION_FILE = "confusion.csv"  # evaluate@: (actual, predicted) per val image, for `dvc plots`
FIGURES_DIR = "figures"  # evaluate@: confusion, conv1 kernels, Fig. 4's predictions and neighbours
RUN_FILES = (METRICS_FILE, PER_IMAGE_FILE, HISTORY_FILE, RUN_FILE)  # a runs folder's files, all a report reads
FIGURE1_RESULTS = "figure1.json"  # the figure1 stage's results (not a run's: one per study)
FIGURE1_PLOT = "figure1.png"


def run_name(variant: str, seed: int) -> str:
    """Folder and MLflow run name of one (variant, seed) replicate: 'baseline-s0'."""
    return f"{variant}-s{seed}"


@dataclass(frozen=True)
class RunLayout:
    """Where one (variant, seed) replicate's files live: models/NAME/ and reports/runs/NAME/.

    `models` and `reports` are the two parent folders dvc.yaml passes in; the file names are the ones its
    train@ and evaluate@ outs list.
    """

    variant: str
    seed: int
    models: Path
    reports: Path

    @property
    def name(self) -> str:
        return run_name(self.variant, self.seed)

    @property
    def model_dir(self) -> Path:
        return self.models / self.name

    @property
    def report_dir(self) -> Path:
        return self.reports / self.name

    @property
    def model_file(self) -> Path:
        return self.model_dir / MODEL_FILE

    @property
    def run_file(self) -> Path:
        """run.json: the replicate's RunRecord."""
        return self.model_dir / RUN_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.model_dir / CHECKPOINT_DIR

    @property
    def history_file(self) -> Path:
        return self.report_dir / HISTORY_FILE

    @property
    def metrics_file(self) -> Path:
        return self.report_dir / METRICS_FILE

    @property
    def per_class_file(self) -> Path:
        return self.report_dir / PER_CLASS_FILE

    @property
    def figure_dir(self) -> Path:
        return self.report_dir / FIGURES_DIR

    def record(self) -> RunRecord | None:
        """run.json's record, or None before training wrote it."""
        return RunRecord.read(self.run_file) if self.run_file.is_file() else None

    @classmethod
    def trained(cls, models: Path, reports: Path) -> list[RunLayout]:
        """Every replicate with a run.json under `models`, identified by what train wrote there."""
        records = [RunRecord.read(run_file) for run_file in sorted(models.glob(f"*/{RUN_FILE}"))]
        return [cls(record.variant, record.seed, models, reports) for record in records]


# -- run.json ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    """run.json, written by train@ beside the model: who the run is, what it ran on, where its values came from,
    and its model card (what the outputs mean and how inputs were prepared; alexnet.model.saved.model_card).

    The JSON keys are the field names, in this order. Reading tolerates missing optional keys (older files) and
    keeps unknown ones in `extra`, written back after the rest.
    """

    run: str
    variant: str
    seed: int
    backend: str | None = None
    precision: str | None = None  # the Keras dtype policy it trained in
    onednn: str | None = None  # on | off (alexnet.backend.OneDnnChoice.record)
    onednn_source: str | None = None
    onednn_isa_cap: str | None = None
    mlflow_run_id: str | None = None
    tracking_failure: str | None = None  # the one line tracking printed when the store failed, else null
    # Where the values came from (params_provenance): params.yaml relative to the project root, at `git_commit`,
    # with the `-S` overrides of DVC experiment `dvc_exp_name` ("workspace": none beyond params.yaml itself).
    params_source: str | None = None
    git_commit: str | None = None
    dvc_exp_name: str | None = None
    params_file: str | None = None  # older files only: the absolute path read (a queued run's copy, since gone)
    learning_rate: float | None = None  # two of the values it trained with, for a glance
    dropout: float | None = None
    classes: list[dict] | None = None  # the model card: output i is classes[i]
    data_hash: str | None = None
    prepared_size: int | None = None
    jpeg_quality: int | None = None
    crop: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        values = {item.name: getattr(self, item.name) for item in fields(self) if item.name != "extra"}
        if values["params_file"] is None:
            del values["params_file"]
        return {**values, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: Path | str = RUN_FILE) -> RunRecord:
        missing = [key for key in ("variant", "seed") if key not in data]
        if missing:
            raise ValueError(f"{source}: no {' or '.join(missing)}; re-run its train@ stage, which writes them")
        known = {item.name for item in fields(cls)} - {"extra"}
        values = {key: value for key, value in data.items() if key in known}
        values["seed"] = int(data["seed"])
        values["run"] = data.get("run") or run_name(data["variant"], values["seed"])
        return cls(**values, extra={key: value for key, value in data.items() if key not in known})

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError:
            raise ValueError(f"{path}: not valid JSON; restore the run.json that train wrote") from None
        return cls.from_json(data, path)

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")


# -- provenance and tags ----------------------------------------------------------------------------------------
def git_commit(root: Path | None = None) -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root or store_root(), capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


def dvc_exp_name() -> str:
    """The DVC experiment this process runs in (DVC sets DVC_EXP_NAME), or "workspace"."""
    return os.environ.get("DVC_EXP_NAME", "workspace")


def params_provenance(root: Path | None = None) -> dict[str, str]:
    """run.json's record of where a run's values came from, true after the run too (a queued run's copy of
    params.yaml is deleted): params.yaml at a git commit, plus the DVC experiment's `-S` overrides."""
    return {"params_source": PARAMS_FILE, "git_commit": git_commit(root), "dvc_exp_name": dvc_exp_name()}


def run_tags(variant: str, seed: int, data_hash: str, stage: str, root: Path | None = None) -> dict[str, str]:
    """MLflow tags linking a run to its DVC world; (variant, seed, commit, exp) identifies a run."""
    return {
        "variant": variant,
        "seed": str(seed),
        "dvc_stage": stage,
        "git_commit": git_commit(root),
        "dvc_exp_name": dvc_exp_name(),
        "data_hash": data_hash,
    }
