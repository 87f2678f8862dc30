"""DVC stage `compare`: the ablation table, paper-claim verdicts and curves -> --out; MLflow parent run.

The report is `alexnet report`'s, from the same code (reports.report_from_folder); this stage adds MLflow: the
study's parent run, and a last report section listing every run in the store.
"""

from alexnet.config import load
from alexnet.reports import report_from_folder
from alexnet.run_identity import FIGURE1_PLOT, FIGURE1_RESULTS
from alexnet.stage import stage_arguments, stage_main
from alexnet.tracking import tracked_run
from alexnet.tracking.study import StudyTracker, best_baseline

PATHS = {
    "models": "parent folder of the runs' model folders (run.json)",
    "runs": "parent folder of the runs' report folders (metrics.json, per_image.csv, history.csv)",
    "figure1": "the figure1 stage's folder (figure1.json, figure1.png)",
    "out": "folder for ablations.md/.json and curves",
}


def main() -> None:
    args = stage_arguments(__doc__, PATHS)
    cfg = load()
    tracker = StudyTracker(cfg.tracking).connect()
    figure1 = args.figure1 / FIGURE1_RESULTS
    report = report_from_folder(args.runs, args.out, figure1, models=args.models, tracked=tracker.variant_runs())
    runs = report.runs
    study = cfg.tracking.experiment
    tags = {"study": study, "dvc_stage": "compare", "kind": "study"}
    with tracked_run(tracker, f"study-{study}", tags, resume_run_id=None):
        tracker.link_children(tracker.run_id, [run.mlflow_run_id for run in runs if run.mlflow_run_id], study)
        tracker.log_metrics(report.flat_metrics())  # claim.<key>.effect/.low/.high: studies compare in the UI
        tracker.log_table(report.verdict_table(), "report/verdicts.json")
        tracker.share_study_view()
        for path in [*report.files, args.figure1 / FIGURE1_PLOT]:
            tracker.log_artifact(path, "report")
    champion = best_baseline(runs)
    if champion:
        tracker.register_champion(champion.mlflow_run_id, f"{champion.name}, lowest 10-crop top-1 error of the study")
    print(f"compare: {len(runs)} runs -> {report.markdown}")


if __name__ == "__main__":
    stage_main(main)
