"""DVC stage `compare`: the ablation table, paper-claim verdicts and curves -> reports/; MLflow parent run."""

import json
from pathlib import Path

from alexnet.cli import stage_main
from alexnet.config import load
from alexnet.reports import build_report, collect_runs
from alexnet.tracking import Tracker, best_baseline, tracked_run


def main() -> None:
    cfg = load()
    runs = collect_runs(Path("reports/runs"), Path("models"))
    figure1_file = Path("reports/figure1/figure1.json")
    figure1 = json.loads(figure1_file.read_text()) if figure1_file.is_file() else None
    tracker = Tracker(cfg.tracking).connect()
    report = build_report(cfg, runs, Path("reports"), figure1, tracked=tracker.variant_runs())
    study = cfg.tracking.experiment
    tags = {"study": study, "dvc_stage": "compare", "kind": "study"}
    with tracked_run(tracker, f"study-{study}", tags, resume_run_id=None):
        tracker.link_children(tracker.run_id, [run.mlflow_run_id for run in runs if run.mlflow_run_id], study)
        tracker.log_metrics(report.flat_metrics())
        tracker.share_study_view()
        for path in [*report.files, Path("reports/figure1/figure1.png")]:
            tracker.log_artifact(path, "report")
    champion = best_baseline(runs)
    if champion:
        tracker.register_champion(champion.mlflow_run_id, f"{champion.name}, lowest 10-crop top-1 error of the study")
    print(f"compare: {len(runs)} runs -> {report.markdown}")


if __name__ == "__main__":
    stage_main(main)
