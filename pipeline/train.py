"""DVC stage `train@VARIANT-SEED`: one model of the ablation study -> --models/VARIANT-sSEED/."""

import alexnet.backend  # noqa: F401  (first: sets KERAS_BACKEND from params.yaml)
from alexnet.checkpoint import TrainingRun, fingerprint, resume_state
from alexnet.config import load
from alexnet.data.input import load_prepared
from alexnet.model.saved import model_card
from alexnet.run_identity import RUN_FILE, RunLayout, RunRecord, params_provenance, run_tags
from alexnet.stage import stage_arguments, stage_main
from alexnet.tracking import Tracker, tracked_run
from alexnet.training import train

PATHS = {
    "prepared": "prepared-data folder",
    "models": "parent folder of the run's model folder",
    "reports": "parent folder of the run's report folder (history.csv)",
}


def main() -> None:
    args = stage_arguments(__doc__, PATHS, matrix=True)
    cfg = load(variant=args.variant, seed=args.seed)
    layout = RunLayout(args.variant, args.seed, args.models, args.reports)
    data = load_prepared(args.prepared)
    layout.model_dir.mkdir(parents=True, exist_ok=True)
    layout.report_dir.mkdir(parents=True, exist_ok=True)
    run = TrainingRun(
        model_file=layout.model_file,
        history_file=layout.history_file,
        checkpoint_dir=layout.checkpoint_dir,
        fingerprint=fingerprint(cfg, data.data_hash),
    )
    state = resume_state(run, cfg.train.epochs)
    tracker = Tracker(cfg.tracking).connect()
    tags = run_tags(args.variant, args.seed, data.data_hash, stage="train")
    resume_id = state and state.get("mlflow_run_id")
    card = model_card(cfg, data)
    with tracked_run(tracker, layout.name, tags, resume_id, system_metrics=True):
        if not resume_id:
            tracker.log_params(cfg)
            tracker.log_dataset(data, "training")
        if state:
            tracker.set_tags({"resumed": "true"})
            print(f"train: resuming {layout.name} after epoch {state['epochs_done']} of {cfg.train.epochs}")
        model, _ = train(cfg, data, run, tracker, state)
        if cfg.tracking.log_model:
            tracker.log_keras_model(model, beside={RUN_FILE: card})
        tracker.log_artifact(run.history_file)
    record = RunRecord(
        run=layout.name,
        variant=args.variant,
        seed=args.seed,
        backend=cfg.train.backend,
        precision=model.dtype_policy.name,
        **alexnet.backend.ONEDNN.record(),  # on/off, why, and oneDNN's ISA cap
        mlflow_run_id=tracker.run_id,
        tracking_failure=tracker.failure,
        # the values this run trained with (params.yaml + variant + any `dvc exp run -S`), and their source
        **params_provenance(),
        learning_rate=cfg.train.learning_rate,
        dropout=cfg.model.dropout,
        **card,
    )
    record.write(layout.run_file)
    print(f"train: wrote {run.model_file} and {run.history_file}")


if __name__ == "__main__":
    stage_main(main)
