"""The study in MLflow, for the compare stage: the parent run and its child runs, every evaluated run of the
store, the shared runs-table view, and the champion in the model registry (which `alexnet predict` fetches)."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from alexnet.config import ConfigError, TrackingConfig, load
from alexnet.run_identity import BASELINE
from alexnet.study_view import VIEW_TAG, study_view_state
from alexnet.tracking.run import Tracker
from alexnet.tracking.store import check_reachable, import_mlflow, store_uri

CHAMPION = "champion"


class StudyTracker(Tracker):
    """The study's run (compare): a Tracker that also reads the store's variant runs, nests them under the
    study, stores the study view on the experiment and moves the champion alias."""

    def runs(self, tags: dict[str, str]) -> list[Any]:
        def search():
            query = " and ".join(f"tags.{key} = '{value}'" for key, value in tags.items())
            return self._client.search_runs([self.experiment_id()], query, max_results=1000)

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

    def link_children(self, parent_id: str, child_ids: list[str], study: str) -> None:
        """Nest the variant runs under the study's run; tag them so `tags.study = '...'` filters one study."""
        for child in child_ids:
            self._guard(lambda child=child: self._client.set_tag(child, "mlflow.parentRunId", parent_id))
            self._guard(lambda child=child: self._client.set_tag(child, "study", study))

    def share_study_view(self) -> None:
        """Store the study view (key metric columns, sorted by 10-crop error; val error curves) on the experiment."""
        self._guard(lambda: self._client.set_experiment_tag(self.experiment_id(), VIEW_TAG,
                                                            json.dumps(study_view_state())))  # fmt: skip

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


def best_baseline(runs: list[Any], variant: str = BASELINE) -> Any | None:
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
    if cfg is None:
        try:
            cfg = load().tracking
        except (ConfigError, OSError):
            cfg = None
    store = store_uri(cfg)
    mlflow = import_mlflow()
    check_reachable(store)
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
