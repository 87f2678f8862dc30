"""`alexnet ui`: the MLflow UI over the project's store, and the address of the study view compare stored."""

from __future__ import annotations

import sys

from alexnet.config import ConfigError, load, store_root
from alexnet.study_view import VIEW_TAG, study_view_url
from alexnet.tracking.store import STORE_FILE, artifact_location, import_mlflow, project_store_uri


def ui_command(host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    root = store_root()
    return [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", project_store_uri(root),
        "--default-artifact-root", artifact_location(root), "--host", host, "--port", str(port),
    ]  # fmt: skip


def study_view_link(base: str) -> str | None:
    """The study view's address in the project's store (None before the first compare, or without a store)."""
    root = store_root()
    if not (root / STORE_FILE).is_file():  # opening a missing SQLite store would create it
        return None
    try:
        experiment_name = load().tracking.experiment
    except (ConfigError, OSError):
        return None
    mlflow = import_mlflow()
    try:
        experiment = mlflow.MlflowClient(project_store_uri(root)).get_experiment_by_name(experiment_name)
    except mlflow.exceptions.MlflowException:  # a store the UI will report on itself
        return None
    if experiment is None or VIEW_TAG not in experiment.tags:
        return None
    return study_view_url(base, experiment.experiment_id)
