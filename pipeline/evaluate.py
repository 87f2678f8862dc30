"""DVC stage `evaluate@VARIANT-SEED`: top-1/top-5 (centre, 10-crop), confusion, figures -> reports/runs/."""

import json
from pathlib import Path

import alexnet.backend  # noqa: F401  (first: sets KERAS_BACKEND from params.yaml)
from alexnet.cli import matrix_arguments, stage_main
from alexnet.config import load, run_name
from alexnet.data.input import load_prepared
from alexnet.evaluation import evaluate_run
from alexnet.tracking import Tracker, run_tags, tracked_run


def main() -> None:
    variant, seed = matrix_arguments(__doc__)
    cfg = load(variant=variant, seed=seed)
    name = run_name(variant, seed)
    model_dir, report_dir = Path("models") / name, Path("reports/runs") / name
    data = load_prepared(Path("data/prepared"))
    if not (model_dir / "run.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no trained model; train it first (dvc repro train@{variant}-{seed})")
    trained = json.loads((model_dir / "run.json").read_text())
    tracker = Tracker(cfg.tracking).connect()
    tags = run_tags(variant, seed, data.data_hash, stage="evaluate")
    with tracked_run(tracker, name, tags, resume_run_id=trained.get("mlflow_run_id")):
        results = evaluate_run(cfg, data, model_dir / "model.keras", report_dir)
        tracker.log_evaluation(results, data, report_dir / "history.csv")
        tracker.set_tags({"dvc_stage": "evaluate"})
        tracker.log_artifacts(report_dir / "figures", "figures")
        tracker.log_artifact(report_dir / "metrics.json")
        tracker.log_artifact(report_dir / "per_class.csv")
    print(f"evaluate: {name} top-1 error {results['top1_error']:.3f}; wrote {report_dir}")


if __name__ == "__main__":
    stage_main(main)
