"""Write hand-made runs to disk the way train@ and evaluate@ leave them, for the loaders and the report command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from alexnet.runs import RunResult


def write_runs(runs_dir: Path, runs: list[RunResult], models_dir: Path | None = None) -> None:
    """Each run's metrics.json, per_image.csv and history.csv under runs_dir/<name>/; run.json there too, or
    under models_dir/<name>/ (the DVC workspace's layout) when given."""
    for result in runs:
        folder = runs_dir / result.name
        folder.mkdir(parents=True, exist_ok=True)
        identity_dir = folder if models_dir is None else models_dir / result.name
        identity_dir.mkdir(parents=True, exist_ok=True)
        (identity_dir / "run.json").write_text(
            json.dumps({"variant": result.variant, "seed": result.seed, "data_hash": result.data_hash or "abc"})
        )
        (folder / "metrics.json").write_text(json.dumps(result.metrics))
        with (folder / "history.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(result.history[0])
            writer.writerows(row.values() for row in result.history)
        with (folder / "per_image.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(result.per_image)
            writer.writerows(zip(*(column.tolist() for column in result.per_image.values()), strict=True))
