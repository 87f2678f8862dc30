"""Everything MLflow: store location, run identity, tags, parent/child runs.

The only module that imports mlflow. Store: `sqlite:///<root>/mlflow.db` with artifacts in
`<root>/mlartifacts`, where root is DVC_ROOT (set by DVC to the real project even for
`dvc exp run --temp/--queue`), so queued experiments land in the one project store.
MLFLOW_TRACKING_URI overrides it, then `tracking.uri`.

Failure policy (`tracking.on_failure`): `warn` keeps training and DVC outputs and prints one
line saying tracking failed; `fail` checks the store before any work and stops with a clear
message. Either way no training is lost to a logging error.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alexnet.config import Config, TrackingConfig, flatten, store_root

STORE_FILE = "mlflow.db"
ARTIFACT_FOLDER = "mlartifacts"
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


class TrackingError(OSError):
    """The tracking store could not be reached or written.

    An OSError, so every stage script's error handler (alexnet.cli.stage_main) prints it as one line and
    exits 2 under `on_failure: fail`, instead of a traceback.
    """


def store_uri(cfg: TrackingConfig, root: Path | None = None) -> str:
    root = root or store_root()
    return os.environ.get("MLFLOW_TRACKING_URI") or cfg.uri or f"sqlite:///{root / STORE_FILE}"


def artifact_location(root: Path | None = None) -> str:
    return ((root or store_root()) / ARTIFACT_FOLDER).as_uri()


def _retry(action: Callable[[], Any], attempts: int = 8) -> Any:
    """SQLite allows one writer: concurrent queued runs retry 'database is locked' with jitter."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:  # mlflow wraps sqlalchemy errors in MlflowException
            if "locked" not in str(error).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt * (1 + random.random()))
    return None


@contextmanager
def _opening_lock(uri: str) -> Iterator[None]:
    """One process at a time opens a SQLite store: MLflow creates a new store's tables and runs its
    migrations unlocked, and two queued runs (`dvc queue start -j 2`) opening a fresh mlflow.db at once
    broke it ('table ... already exists', half-done alembic migrations)."""
    if not uri.startswith("sqlite:"):
        yield
        return
    import fcntl
    import hashlib
    import tempfile

    name = f"alexnet-mlflow-open-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"
    with open(Path(tempfile.gettempdir()) / name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def git_commit(root: Path | None = None) -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root or store_root(),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


def _quiet_mlflow() -> Any:
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import mlflow

    return mlflow


class Tracker:
    """One MLflow run; every call is a no-op once tracking is disabled or has failed (policy `warn`)."""

    def __init__(self, cfg: TrackingConfig, root: Path | None = None):
        self.cfg = cfg
        self.root = root or store_root()
        self.enabled = cfg.enabled
        self.run_id: str | None = None
        self.failure: str | None = None
        self._mlflow = None
        self._client = None

    # -- plumbing -----------------------------------------------------------------------------------
    def _guard(self, action: Callable[[], Any]) -> Any:
        if not self.enabled:
            return None
        try:
            return _retry(action)
        except Exception as error:
            self._fail(error)
            return None

    def _fail(self, error: Exception) -> None:
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        message = f"tracking: MLflow store {self.uri} failed ({reason})"
        if self.cfg.on_failure == "fail":
            raise TrackingError(message + "; fix the store or set tracking.on_failure: warn") from None
        self.failure = message
        self.enabled = False
        print(message + "; training continues and DVC outputs are kept", file=sys.stderr, flush=True)

    @property
    def uri(self) -> str:
        return store_uri(self.cfg, self.root)

    def connect(self) -> Tracker:
        """Open the store (creating the experiment); under `fail` this raises before any work starts."""
        if not self.enabled:
            return self

        def open_store():
            mlflow = _quiet_mlflow()
            mlflow.set_tracking_uri(self.uri)
            _check_reachable(self.uri)
            client = mlflow.MlflowClient(self.uri)
            experiment = client.get_experiment_by_name(self.cfg.experiment)
            if experiment is None:
                try:
                    location = artifact_location(self.root) if self.uri.startswith("sqlite") else None
                    client.create_experiment(self.cfg.experiment, artifact_location=location)
                except Exception as error:  # another queued run created it first
                    if "already exists" not in str(error):
                        raise
            experiment = mlflow.set_experiment(self.cfg.experiment)
            if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
                # MLflow 3's UI opens GenAI pages unless the experiment says it is model training.
                client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
            self._mlflow, self._client = mlflow, client

        with _opening_lock(self.uri):
            self._guard(open_store)
        return self

    # -- runs ---------------------------------------------------------------------------------------
    def start(self, run_name: str, tags: dict[str, str], resume_run_id: str | None = None) -> str | None:
        """Start a run, or continue `resume_run_id` (resumed training, evaluation) so nothing is duplicated."""

        def begin():
            if resume_run_id:
                run = self._mlflow.start_run(run_id=resume_run_id)
            else:
                run = self._mlflow.start_run(run_name=run_name, tags=tags)
            return run.info.run_id

        self.run_id = self._guard(begin)
        return self.run_id

    def end(self, status: str = "FINISHED") -> None:
        self._guard(lambda: self._mlflow.end_run(status=status))

    def log_params(self, config: Config | dict) -> None:
        params = {key: str(value) for key, value in flatten(config).items()}
        items = list(params.items())
        for start in range(0, len(items), 90):
            chunk = dict(items[start : start + 90])
            # Looked up inside the guard: after a failed connect (policy `warn`) there is no mlflow module.
            self._guard(lambda chunk=chunk: self._mlflow.log_params(chunk))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {key: float(value) for key, value in metrics.items() if value is not None}
        self._guard(lambda: self._mlflow.log_metrics(clean, step=step))

    def set_tags(self, tags: dict[str, str]) -> None:
        self._guard(lambda: self._mlflow.set_tags(tags))

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if path.exists():
            self._guard(lambda: self._mlflow.log_artifact(str(path), artifact_path=folder))

    def log_artifacts(self, folder: Path, destination: str | None = None) -> None:
        if folder.is_dir():
            self._guard(lambda: self._mlflow.log_artifacts(str(folder), artifact_path=destination))

    def log_keras_model(self, model) -> None:
        """The trained model as an MLflow 3 logged model (`log_model(name=...)`, stored in `.keras` format)."""

        def log():
            import keras
            import tensorflow

            requirements = [f"tensorflow=={tensorflow.__version__}", f"keras=={keras.__version__}"]
            self._mlflow.keras.log_model(model, name="model", pip_requirements=requirements)

        self._guard(log)

    def link_children(self, parent_id: str, child_ids: list[str], study: str) -> None:
        """Nest the variant runs under the study's run; tag them so `tags.study = '...'` filters one study."""
        for child in child_ids:
            self._guard(lambda child=child: self._client.set_tag(child, "mlflow.parentRunId", parent_id))
            self._guard(lambda child=child: self._client.set_tag(child, "study", study))

    def runs(self, tags: dict[str, str]) -> list[Any]:
        def search():
            experiment = self._client.get_experiment_by_name(self.cfg.experiment)
            query = " and ".join(f"tags.{key} = '{value}'" for key, value in tags.items())
            return self._client.search_runs([experiment.experiment_id], query, max_results=1000)

        return self._guard(search) or []

    def variant_runs(self) -> list[dict[str, Any]]:
        """Every evaluated variant run in the store, from any DVC experiment: the study across experiments."""
        rows = []
        for run in self.runs({}):
            tags, metrics = run.data.tags, run.data.metrics
            if "variant" not in tags or "eval_top1_error" not in metrics:
                continue
            rows.append({
                "run": run.info.run_name, "dvc_exp_name": tags.get("dvc_exp_name", ""),
                "variant": tags["variant"], "seed": tags.get("seed", ""), "git_commit": tags.get("git_commit", "")[:8],
                "top1_error": metrics["eval_top1_error"], "top5_error": metrics.get("eval_top5_error"),
                "ten_crop_top1_error": metrics.get("eval_ten_crop_top1_error"), "start_time": run.info.start_time,
            })  # fmt: skip
        return sorted(rows, key=lambda row: row["start_time"])


def _check_reachable(uri: str) -> None:
    """Fail in a second, not after minutes of HTTP retries, when a tracking server is down."""
    if not uri.startswith(("http://", "https://")):
        return
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=3):
            pass
    except OSError as error:
        raise TrackingError(
            f"cannot connect to {parsed.hostname}:{port} ({error.strerror or error})"
        ) from None


def run_tags(variant: str, seed: int, data_hash: str, stage: str, root: Path | None = None) -> dict[str, str]:
    """Tags linking a run to its DVC world; (variant, seed, commit, exp) identifies a run."""
    return {
        "variant": variant,
        "seed": str(seed),
        "dvc_stage": stage,
        "git_commit": git_commit(root),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
        "data_hash": data_hash,
    }


@contextmanager
def tracked_run(
    tracker: Tracker, run_name: str, tags: dict[str, str], resume_run_id: str | None
) -> Iterator[Tracker]:
    tracker.start(run_name, tags, resume_run_id)
    try:
        yield tracker
    except BaseException:
        tracker.end("KILLED")
        raise
    tracker.end("FINISHED")


def ui_command(host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    root = store_root()
    return [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{root / STORE_FILE}",
        "--default-artifact-root", artifact_location(root), "--host", host, "--port", str(port),
    ]  # fmt: skip
