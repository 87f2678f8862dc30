"""DVC stage `train@VARIANT-SEED`: one model of the ablation study -> models/VARIANT-sSEED/."""

import json
from pathlib import Path

import alexnet.backend  # noqa: F401  (first: sets KERAS_BACKEND from params.yaml)
from alexnet.cli import matrix_arguments, stage_main
from alexnet.config import PARAMS_FILE, load, project_root, run_name
from alexnet.data.input import load_prepared
from alexnet.model.saved import CARD_FILE, model_card
from alexnet.tracking import Tracker, run_tags, tracked_run
from alexnet.training import TrainingRun, fingerprint, resume_state, train


def main() -> None:
    variant, seed = matrix_arguments(__doc__)
    cfg = load(variant=variant, seed=seed)
    name = run_name(variant, seed)
    data = load_prepared(Path("data/prepared"))
    model_dir, report_dir = Path("models") / name, Path("reports/runs") / name
    model_dir.mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    run = TrainingRun(
        model_file=model_dir / "model.keras",
        history_file=report_dir / "history.csv",
        checkpoint_dir=model_dir / "checkpoints",
        fingerprint=fingerprint(cfg, data.data_hash),
    )
    state = resume_state(run, cfg.train.epochs)
    tracker = Tracker(cfg.tracking).connect()
    tags = run_tags(variant, seed, data.data_hash, stage="train")
    resume_id = state and state.get("mlflow_run_id")
    with tracked_run(tracker, name, tags, resume_id, system_metrics=True):
        if not resume_id:
            tracker.log_params(cfg)
            tracker.log_dataset(data, "training")
        if state:
            tracker.set_tags({"resumed": "true"})
            print(f"train: resuming {name} after epoch {state['epochs_done']} of {cfg.train.epochs}")
        model, _ = train(cfg, data, run, tracker, state)
        if cfg.tracking.log_model:
            tracker.log_keras_model(model, beside={CARD_FILE: model_card(cfg, data)})
        tracker.log_artifact(run.history_file)
    (model_dir / "run.json").write_text(
        json.dumps(
            {
                "run": name,
                "variant": variant,
                "seed": seed,
                "backend": cfg.train.backend,
                "mlflow_run_id": tracker.run_id,
                "tracking_failure": tracker.failure,
                # the values this run trained with (params.yaml + variant + any `dvc exp run -S`), and its source
                "params_file": str(project_root() / PARAMS_FILE),
                "learning_rate": cfg.train.learning_rate,
                "dropout": cfg.model.dropout,
                **model_card(cfg, data),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"train: wrote {run.model_file} and {run.history_file}")


if __name__ == "__main__":
    stage_main(main)
