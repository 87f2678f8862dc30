"""What every stage script shares: its arguments (paths come from dvc.yaml's `cmd`), the run layout, error handling."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alexnet.config import ConfigError, run_name

# What a user causes (params, paths, files, data, the network): one line and exit 2, never a traceback.
# ConfigError is a ValueError; TrackingError and DownloadError are OSErrors.
USER_ERRORS = (ConfigError, ValueError, OSError)


def stage_main(body: Callable[[], None]) -> None:
    """Run a stage body; a user error is one line on stderr and exit status 2 (ALEXNET_DEBUG=1: the traceback)."""
    try:
        body()
    except USER_ERRORS as error:
        if os.environ.get("ALEXNET_DEBUG"):
            raise
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)


def stage_arguments(description: str, paths: dict[str, str], matrix: bool = False) -> argparse.Namespace:
    """Parse a stage's command line: [VARIANT SEED] and one required `--name PATH` per entry of `paths`.

    The paths have no defaults on purpose: dvc.yaml's `cmd` is the one place they are written.
    """
    parser = argparse.ArgumentParser(description=description)
    if matrix:
        parser.add_argument("variant", help="a name under ablations.variants in params.yaml")
        parser.add_argument("seed", type=int, help="the replicate seed (one of ablations.seeds)")
    for name, help_text in paths.items():
        parser.add_argument(f"--{name}", type=Path, required=True, metavar="PATH", help=help_text)
    return parser.parse_args()


@dataclass(frozen=True)
class RunLayout:
    """Where one (variant, seed) replicate's files live: models/NAME/ and reports/runs/NAME/.

    `models` and `reports` are the two parent folders dvc.yaml passes in; the file names below
    are the ones its train@ and evaluate@ outs list.
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
        return self.model_dir / "model.keras"

    @property
    def run_file(self) -> Path:
        """run.json: the replicate's identity (variant, seed) and its MLflow run id."""
        return self.model_dir / "run.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.model_dir / "checkpoints"

    @property
    def history_file(self) -> Path:
        return self.report_dir / "history.csv"

    @property
    def metrics_file(self) -> Path:
        return self.report_dir / "metrics.json"

    def identity(self) -> dict:
        """run.json's contents, or {} before training wrote it."""
        return json.loads(self.run_file.read_text()) if self.run_file.is_file() else {}

    @classmethod
    def trained(cls, models: Path, reports: Path) -> list[RunLayout]:
        """Every replicate with a run.json under `models`, identified by what train wrote there."""
        layouts = []
        for run_file in sorted(models.glob("*/run.json")):
            identity = json.loads(run_file.read_text())
            layouts.append(cls(identity["variant"], int(identity["seed"]), models, reports))
        return layouts
