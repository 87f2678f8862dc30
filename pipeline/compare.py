"""DVC stage `compare`: the ablation table, paper-claim verdicts and curves -> reports/; MLflow parent run."""

from pathlib import Path

from alexnet.cli import stage_main
from alexnet.config import load
from alexnet.reports import build_report, collect_runs
from alexnet.tracking import Tracker


def main() -> None:
    cfg = load()
    runs = collect_runs(Path("reports/runs"), Path("models"))
    report = build_report(cfg, runs, Path("reports"))
    tracker = Tracker(cfg.tracking).connect()
    study = cfg.tracking.experiment
    tracker.start(f"study-{study}", {"study": study, "dvc_stage": "compare", "kind": "study"})
    tracker.link_children(tracker.run_id, [run.mlflow_run_id for run in runs if run.mlflow_run_id])
    tracker.log_metrics(report.flat_metrics())
    for path in report.files:
        tracker.log_artifact(path, "report")
    tracker.end()
    print(f"compare: {len(runs)} runs -> {report.markdown}")


if __name__ == "__main__":
    stage_main(main)
