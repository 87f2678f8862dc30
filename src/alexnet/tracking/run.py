"""One MLflow run of a variant and seed, shared by the train and evaluate stages: params, per-epoch metrics,
the model, the prepared data as datasets. The tags that link the run to its DVC world are
alexnet.run_identity.run_tags.

Failure policy (`tracking.on_failure`): `warn` keeps training and DVC outputs and prints one line saying
tracking failed; `fail` checks the store before any work and stops with a clear message. Either way no
training is lost to a logging error.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alexnet.config import Config, TrackingConfig, flatten, store_root
from alexnet.tracking.store import (
    TrackingError,
    artifact_location,
    check_reachable,
    import_mlflow,
    opening_lock,
    retry_locked,
    store_uri,
)

EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


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
            return retry_locked(action)
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
            mlflow = import_mlflow()
            mlflow.set_tracking_uri(self.uri)
            check_reachable(self.uri)
            client = mlflow.MlflowClient(self.uri)
            if client.get_experiment_by_name(self.cfg.experiment) is None:
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

        with opening_lock(self.uri):
            self._guard(open_store)
        return self

    def experiment_id(self) -> str:
        return self._client.get_experiment_by_name(self.cfg.experiment).experiment_id

    # -- the run ------------------------------------------------------------------------------------
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

    # -- the model and the data ---------------------------------------------------------------------
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
            found = self._client.search_logged_models(
                [self.experiment_id()], filter_string=f"source_run_id = '{run_id}'", max_results=10
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

    def log_evaluation(self, results: dict[str, float], data, train_val_gap: float | None = None) -> None:
        """Evaluation metrics linked to the run's logged model and to the prepared data (MLflow 3 Models tab),
        plus `train_val_gap` (a key column of the runs table) when known."""
        dataset = self.log_dataset(data, "eval")
        metrics = {f"eval_{key}": value for key, value in results.items()}
        if train_val_gap is not None:
            metrics["train_val_gap"] = train_val_gap
        self.log_metrics(metrics, model_id=self.logged_model_id(), dataset=dataset)


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


def prepared_dataset(data, split: str) -> Any:
    """One split of data/prepared as an MLflow dataset: the folder as source, the data hash as digest.

    Named `prepared-train` / `prepared-val`: MLflow keeps one input per dataset and run, so training's and
    evaluation's inputs need distinct names to both show. The profile holds every split's size.
    """
    import_mlflow()
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


@contextmanager
def tracked_run(
    tracker: Tracker, run_name: str, tags: dict[str, str], resume_run_id: str | None, system_metrics: bool = False
) -> Iterator[Tracker]:
    """The run open for the `with` block: FINISHED when it completes, KILLED when it raises (or is interrupted)."""
    tracker.start(run_name, tags, resume_run_id, system_metrics)
    try:
        yield tracker
    except BaseException:
        tracker.end("KILLED")
        raise
    tracker.end("FINISHED")
