"""DVC stage `evaluate@VARIANT-SEED`: top-1/top-5 (centre, 10-crop), confusion, figures -> --reports/VARIANT-sSEED/."""

import alexnet.backend  # noqa: F401  (first: sets KERAS_BACKEND from params.yaml)
from alexnet.config import load
from alexnet.data.input import load_prepared
from alexnet.evaluation import evaluate_run, train_val_gap
from alexnet.run_identity import FIGURES_DIR, RunLayout, run_tags
from alexnet.stage import stage_arguments, stage_main
from alexnet.tracking import Tracker, tracked_run

PATHS = {
    "prepared": "prepared-data folder",
    "models": "parent folder of the run's model folder (model.keras, run.json)",
    "reports": "parent folder of the run's report folder to write",
}


def main() -> None:
    args = stage_arguments(__doc__, PATHS, matrix=True)
    cfg = load(variant=args.variant, seed=args.seed)
    layout = RunLayout(args.variant, args.seed, args.models, args.reports)
    data = load_prepared(args.prepared)
    if not layout.run_file.is_file():
        raise FileNotFoundError(
            f"{layout.model_dir}: no trained model; train it first (dvc repro train@{args.variant}-{args.seed})"
        )
    tracker = Tracker(cfg.tracking).connect()
    tags = run_tags(args.variant, args.seed, data.data_hash, stage="evaluate")
    report_dir = layout.report_dir
    with tracked_run(tracker, layout.name, tags, resume_run_id=layout.record().mlflow_run_id):
        results = evaluate_run(cfg, data, layout.model_file, report_dir)
        tracker.log_evaluation(results, data, train_val_gap(layout.history_file))
        tracker.set_tags({"dvc_stage": "evaluate"})
        tracker.log_artifacts(layout.figure_dir, FIGURES_DIR)
        tracker.log_artifact(layout.metrics_file)
        tracker.log_artifact(layout.per_class_file)
    print(f"evaluate: {layout.name} top-1 error {results['top1_error']:.3f}; wrote {report_dir}")


if __name__ == "__main__":
    stage_main(main)
