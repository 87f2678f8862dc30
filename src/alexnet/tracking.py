"""Everything MLflow: store location, run identity, tags, parent/child runs, datasets, the registry.

The only module that imports mlflow. Store: `sqlite:///<root>/mlflow.db` with artifacts in
`<root>/mlartifacts`, where root is DVC_ROOT (set by DVC to the real project even for
`dvc exp run --temp/--queue`), so queued experiments land in the one project store.
MLFLOW_TRACKING_URI overrides it, then `tracking.uri`.

Failure policy (`tracking.on_failure`): `warn` keeps training and DVC outputs and prints one
line saying tracking failed; `fail` checks the store before any work and stops with a clear
message. Either way no training is lost to a logging error.
"""

from __future__ import annotations

import json
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
CHAMPION = "champion"
# The MLflow UI restores a view (columns, sort, charts) from the experiment tag `mlflow.sharedViewState.<key>`
# when opened with `?viewStateShareKey=<key>`, the same mechanism as its own Share button.
STUDY_VIEW = "alexnet-study"
KEY_COLUMNS = ("val_top1_error", "eval_ten_crop_top1_error", "train_val_gap")


class TrackingError(OSError):
    """The tracking store could not be reached or written.

    An OSError, so every stage script's error handler (alexnet.stage.stage_main) prints it as one line and
    exits 2 under `on_failure: fail`, instead of a traceback.
    """


def store_uri(cfg: TrackingConfig | None, root: Path | None = None) -> str:
    root = root or store_root()
    return os.environ.get("MLFLOW_TRACKING_URI") or (cfg and cfg.uri) or f"sqlite:///{root / STORE_FILE}"


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
        self.model_id: str | None = None
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
    def start(
        self, run_name: str, tags: dict[str, str], resume_run_id: str | None = None, system_metrics: bool = False
    ) -> str | None:
        """Start a run, or continue `resume_run_id` (resumed training, evaluation) so nothing is duplicated.

        `system_metrics` (training only, and only with `tracking.system_metrics: true`) samples CPU, memory
        and GPU through MLflow's own monitor, which needs psutil (and pynvml for GPUs).
        """
        sample = system_metrics and self.cfg.system_metrics

        def begin():
            if resume_run_id:
                run = self._mlflow.start_run(run_id=resume_run_id, log_system_metrics=sample)
            else:
                run = self._mlflow.start_run(run_name=run_name, tags=tags, log_system_metrics=sample)
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

    def log_metrics(
        self, metrics: dict[str, float], step: int | None = None, model_id: str | None = None, dataset: Any = None
    ) -> None:
        clean = {key: float(value) for key, value in metrics.items() if value is not None}
        self._guard(lambda: self._mlflow.log_metrics(clean, step=step, model_id=model_id, dataset=dataset))

    def set_tags(self, tags: dict[str, str]) -> None:
        self._guard(lambda: self._mlflow.set_tags(tags))

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if path.exists():
            self._guard(lambda: self._mlflow.log_artifact(str(path), artifact_path=folder))

    def log_table(self, columns: dict[str, list], artifact_file: str) -> None:
        """A table artifact (`mlflow.log_table`): the UI shows it, and compares it across runs."""
        self._guard(lambda: self._mlflow.log_table(data=columns, artifact_file=artifact_file))

    def log_artifacts(self, folder: Path, destination: str | None = None) -> None:
        if folder.is_dir():
            self._guard(lambda: self._mlflow.log_artifacts(str(folder), artifact_path=destination))

    def log_keras_model(self, model, beside: dict[str, Any] | None = None) -> str | None:
        """The trained model as an MLflow 3 logged model (`.keras` format) with a signature; returns its id.

        Signature: float32 batches [N, crop, crop, 3] of mean-subtracted RGB crops (what evaluation and
        `alexnet predict` feed it) -> float32 logits [N, classes]. The input example is one all-zero crop,
        i.e. the training set's mean image after mean subtraction. `beside` ({file name: JSON content}) is written
        next to the `.keras` file: the model card, so a registered model predicts with its class names.
        """

        def log():
            import keras
            import numpy as np
            import tensorflow

            example = np.zeros((1, *model.input_shape[1:]), np.float32)
            logits = np.asarray(model(example, training=False), np.float32)
            signature = self._mlflow.models.infer_signature(example, logits)
            requirements = [f"tensorflow=={tensorflow.__version__}", f"keras=={keras.__version__}"]
            info = self._mlflow.models.Model.log(
                artifact_path=None, name="model", flavor=_KerasFlavor(self._mlflow, beside), model=model,
                signature=signature, input_example=example, pip_requirements=requirements,
            )  # fmt: skip
            return info.model_id

        self.model_id = self._guard(log)
        return self.model_id

    def logged_model_id(self, run_id: str | None = None) -> str | None:
        """The id of the model logged by `run_id` (default: the current run), or None."""
        run_id = run_id or self.run_id

        def find():
            experiment = self._client.get_experiment_by_name(self.cfg.experiment)
            found = self._client.search_logged_models(
                [experiment.experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=10
            )
            return found[-1].model_id if found else None

        return self._guard(find) if run_id else None

    def log_dataset(self, data, context: str) -> Any:
        """The prepared data as an MLflow dataset input of the current run: context `training` logs the
        train split, `eval` the val split."""
        dataset = self._guard(lambda: prepared_dataset(data, "train" if context == "training" else "val"))
        if dataset is not None:
            self._guard(lambda: self._mlflow.log_input(dataset, context=context))
        return dataset

    def log_evaluation(self, results: dict[str, float], data, history_file: Path | None = None) -> None:
        """Evaluation metrics linked to the run's logged model and to the prepared data (MLflow 3 Models tab).

        Also logs `train_val_gap` (last epoch's val minus inference-mode train top-1 error), a key column of the
        runs table.
        """
        dataset = self.log_dataset(data, "eval")
        metrics = {f"eval_{key}": value for key, value in results.items()}
        gap = train_val_gap(history_file) if history_file else None
        if gap is not None:
            metrics["train_val_gap"] = gap
        self.log_metrics(metrics, model_id=self.logged_model_id(), dataset=dataset)

    def register_champion(self, run_id: str | None, description: str) -> int | None:
        """Register the model logged by `run_id` as `tracking.registered_model` and move alias `champion` to it.

        Re-running compare on the same model reuses its version. Returns the version, or None (one line says why).
        """
        name = self.cfg.registered_model
        if not self.enabled:
            why = (self.failure or "").removeprefix("tracking: ") or "tracking.enabled: false"
            print(f"tracking: registry skipped, {name}@{CHAMPION} not moved ({why})", flush=True)
            return None
        model_id = self.logged_model_id(run_id) if run_id else None
        if model_id is None:
            print(f"tracking: registry skipped, no logged model for {description}", flush=True)
            return None

        def register():
            source = f"models:/{model_id}"
            versions = self._client.search_model_versions(f"name = '{name}'")
            existing = [v for v in versions if v.source == source or getattr(v, "model_id", None) == model_id]
            if existing:
                version = existing[0].version
            else:
                version = self._mlflow.register_model(source, name, tags={"picked_as": description}).version
            self._client.set_registered_model_alias(name, CHAMPION, version)
            return int(version)

        version = self._guard(register)
        if version is not None:
            print(f"tracking: registered {name} version {version} ({description}), alias @{CHAMPION}", flush=True)
        else:
            why = (self.failure or "").removeprefix("tracking: ")
            print(f"tracking: registry skipped, {name}@{CHAMPION} not moved ({why})", flush=True)
        return version

    def share_study_view(self) -> None:
        """Store the study view (key metric columns, sorted by 10-crop error; val error curves) on the experiment."""

        def share():
            experiment = self._client.get_experiment_by_name(self.cfg.experiment)
            tag = f"mlflow.sharedViewState.{STUDY_VIEW}"
            self._client.set_experiment_tag(experiment.experiment_id, tag, json.dumps(study_view_state()))

        self._guard(share)

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


class _KerasFlavor:
    """mlflow.keras with its folder made first: its save_model writes the input example before creating the
    model folder (mlflow/mlflow#16183, open in 3.17), so `mlflow.keras.log_model(input_example=...)` fails."""

    __name__ = "mlflow.keras"

    def __init__(self, mlflow, beside: dict[str, Any] | None = None):
        self._keras = mlflow.keras
        self._beside = beside or {}

    def save_model(self, path, **kwargs):
        os.makedirs(path, exist_ok=True)
        self._keras.save_model(path=path, **kwargs)
        for saved in Path(path).rglob("*.keras"):
            for name, content in self._beside.items():
                (saved.parent / name).write_text(json.dumps(content, indent=2) + "\n")


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


def train_val_gap(history_file: Path) -> float | None:
    """history.csv's train-val gap, by its one definition (alexnet.runs.train_val_gap); None if absent."""
    from alexnet.runs import read_history
    from alexnet.runs import train_val_gap as gap

    return gap(read_history(history_file)) if history_file.is_file() else None


def prepared_dataset(data, split: str) -> Any:
    """One split of data/prepared as an MLflow dataset: the folder as source, the data hash as digest.

    Named `prepared-train` / `prepared-val`: MLflow keeps one input per dataset and run, so training's and
    evaluation's inputs need distinct names to both show. The profile holds every split's size.
    """
    _quiet_mlflow()
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    class PreparedDataset(MetaDataset):
        @property
        def profile(self) -> dict[str, int]:
            return {**{f"{name}_images": int(count) for name, count in data.counts.items()},
                    "classes": data.num_classes, "image_size": data.size}  # fmt: skip

        def to_dict(self) -> dict[str, str]:  # MetaDataset leaves the profile out
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": the local source registered twice
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(Path(data.folder).resolve()))
    return PreparedDataset(source, name=f"prepared-{split}", digest=data.data_hash)


def best_baseline(runs: list[Any], variant: str = "baseline") -> Any | None:
    """The study's champion: the `variant` run (any seed) with the lowest 10-crop top-1 error (centre if absent)."""

    def error(run) -> float:
        value = run.metrics.get("ten_crop_top1_error", run.metrics.get("top1_error"))
        return float("inf") if value is None else float(value)

    candidates = [run for run in runs if run.variant == variant and error(run) < float("inf")]
    return min(candidates, key=error, default=None)


def download_registered_model(uri: str, cfg: TrackingConfig | None = None) -> Path:
    """`models:/NAME@ALIAS` (or `models:/NAME/VERSION`) from the project's registry -> a local `.keras` file.

    Only the `.keras` file is returned; the caller loads it with safe_mode like any other model file.
    """
    import atexit
    import shutil
    import tempfile

    if cfg is None:
        from alexnet.config import ConfigError, load

        try:
            cfg = load().tracking
        except (ConfigError, OSError):
            cfg = None
    store = store_uri(cfg)
    mlflow = _quiet_mlflow()
    _check_reachable(store)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    folder = Path(tempfile.mkdtemp(prefix="alexnet-registry-"))
    atexit.register(shutil.rmtree, folder, True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    except Exception as error:  # MlflowException: unknown name, alias or version
        reason = str(error).splitlines()[0][:200]
        raise ValueError(f"{uri}: not found in the registry at {store} ({reason}); run `dvc repro` (compare)") from None
    files = sorted(local.rglob("*.keras"))
    if len(files) != 1:
        raise ValueError(f"{uri}: expected one .keras file in the registered model, found {len(files)}")
    return files[0]


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
    tracker: Tracker, run_name: str, tags: dict[str, str], resume_run_id: str | None, system_metrics: bool = False
) -> Iterator[Tracker]:
    tracker.start(run_name, tags, resume_run_id, system_metrics)
    try:
        yield tracker
    except BaseException:
        tracker.end("KILLED")
        raise
    tracker.end("FINISHED")


def _line_chart(metric: str, title: str) -> dict[str, Any]:
    return {
        "uuid": f"study-{metric}", "type": "LINE", "runsCountToCompare": 20, "metricSectionId": "study",
        "deleted": False, "isGenerated": False, "displayName": title, "metricKey": metric,
        "selectedMetricKeys": [metric], "lineSmoothness": 0, "xAxisKey": "step", "xAxisScaleType": "linear",
        "scaleType": "linear", "range": {}, "selectedXAxisMetricKey": "", "yAxisKey": "metric",
        "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": True, "useGlobalLineSmoothing": True,
    }  # fmt: skip


def _bar_chart(metric: str, title: str) -> dict[str, Any]:
    return {
        "uuid": f"study-{metric}", "type": "BAR", "runsCountToCompare": 20, "metricSectionId": "study",
        "deleted": False, "isGenerated": False, "displayName": title, "metricKey": metric,
    }  # fmt: skip


def study_view_state() -> dict[str, Any]:
    """The runs table with the key metric columns, best 10-crop error first; charts of the study's curves."""
    columns = [f"metrics.`{metric}`" for metric in KEY_COLUMNS]
    columns += ["tags.`variant`", "tags.`seed`", "attributes.`Dataset`", "attributes.`Models`"]
    charts = [
        _line_chart("val_top1_error", "Val top-1 error per epoch"),
        _line_chart("top1_error", "Train top-1 error per epoch"),
        _bar_chart("eval_ten_crop_top1_error", "10-crop top-1 error"),
        _bar_chart("train_val_gap", "Train-val gap"),
    ]
    section = {"uuid": "study", "name": "Study", "display": True, "isReordered": False, "deleted": False,
               "isGenerated": False}  # fmt: skip
    return {
        "orderByKey": "metrics.`eval_ten_crop_top1_error`", "orderByAsc": True, "selectedColumns": columns,
        "columnOrder": columns, "columnWidths": dict(zip(columns, (130, 190, 130), strict=False)),
        "compareRunCharts": charts, "compareRunSections": [section], "hideEmptyCharts": True,
    }  # fmt: skip


def study_view_url(base: str, experiment_id: str, mode: str = "TABLE") -> str:
    """The UI address of the study view (`mode` TABLE or CHART)."""
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={STUDY_VIEW}&compareRunsMode={mode}"


def study_view_link(base: str) -> str | None:
    """The study view's address in the project's store (None before the first compare)."""
    import sqlite3

    try:
        root = store_root()
        from alexnet.config import load

        experiment = load().tracking.experiment
        with sqlite3.connect(f"file:{root / STORE_FILE}?mode=ro", uri=True) as db:
            row = db.execute(
                "select e.experiment_id from experiments e join experiment_tags t on t.experiment_id = e.experiment_id "
                "where e.name = ? and t.key = ?", (experiment, f"mlflow.sharedViewState.{STUDY_VIEW}"),
            ).fetchone()  # fmt: skip
    except (sqlite3.Error, OSError, ValueError):
        return None
    return study_view_url(base, row[0]) if row else None


def ui_command(host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    root = store_root()
    return [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{root / STORE_FILE}",
        "--default-artifact-root", artifact_location(root), "--host", host, "--port", str(port),
    ]  # fmt: skip
