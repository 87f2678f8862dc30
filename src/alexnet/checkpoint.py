"""Checkpoints and resume: where one (variant, seed) training writes (TrainingRun), the epoch's checkpoint
written beside validation (CheckpointWriter), what a checkpoint must match to be resumed (fingerprint), and the
state a resumed run continues from, dropout's random state included.

checkpoints/ holds last.keras (the model after the last finished epoch) and state.json (what changes after
validation: the schedule, the learning rate, the history, the MLflow run id); next.keras is the epoch's model
while validation runs, moved to last.keras together with its state.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from alexnet.callbacks import learning_rate_of
from alexnet.config import OVERRIDABLE, Config, flatten
from alexnet.run_identity import CHECKPOINT_FILE, NEXT_CHECKPOINT_FILE, STATE_FILE


@dataclass
class TrainingRun:
    """Where one (variant, seed) writes, and its resumable state."""

    model_file: Path
    history_file: Path
    checkpoint_dir: Path
    fingerprint: str

    def load_state(self) -> dict | None:
        state_file = self.checkpoint_dir / STATE_FILE
        if not state_file.is_file() or not (self.checkpoint_dir / CHECKPOINT_FILE).is_file():
            return None
        state = json.loads(state_file.read_text())
        return state if state.get("fingerprint") == self.fingerprint else None

    def write_next_model(self, model) -> None:
        """The model into next.keras; save_checkpoint moves it into place together with its state."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        model.save(self.checkpoint_dir / NEXT_CHECKPOINT_FILE)

    def save_checkpoint(
        self, model, epochs_done: int, schedule: dict, rows: list, run_id: str | None, model_saved: bool = False
    ) -> None:
        """The resumable state after `epochs_done` epochs; the model file too unless `model_saved` (the
        CheckpointWriter wrote it during validation, before the schedule's end-of-epoch change of the rate)."""
        if not model_saved:
            self.write_next_model(model)
        os.replace(self.checkpoint_dir / NEXT_CHECKPOINT_FILE, self.checkpoint_dir / CHECKPOINT_FILE)
        state = {
            "fingerprint": self.fingerprint,
            "epochs_done": epochs_done,
            "seed_generators": seed_generator_states(model),
            "schedule": schedule,
            "learning_rate": learning_rate_of(model.optimizer),
            "history": rows,
            "mlflow_run_id": run_id,
        }
        (self.checkpoint_dir / "state.tmp").write_text(json.dumps(state, indent=2))
        os.replace(self.checkpoint_dir / "state.tmp", self.checkpoint_dir / STATE_FILE)


def seed_generator_states(model: keras.Model) -> dict[str, list[int]]:
    """Dropout's random state by layer: a `.keras` file does not keep it, so a resume would draw new masks."""
    return {
        layer.name: np.asarray(layer.seed_generator.state.value).tolist()
        for layer in model.layers
        if getattr(layer, "seed_generator", None) is not None
    }


def restore_seed_generators(model: keras.Model, states: dict[str, list[int]]) -> None:
    for name, value in states.items():
        generator = model.get_layer(name).seed_generator
        generator.state.assign(np.asarray(value, dtype=generator.state.dtype))


def fingerprint(cfg: Config, data_hash: str) -> str:
    """What a checkpoint must match to be resumed: model, augmentation, training params and the data."""
    relevant = {key: value for key, value in flatten(cfg).items() if key.split(".")[0] in OVERRIDABLE}
    relevant["data_hash"] = data_hash
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def resume_state(run: TrainingRun, total_epochs: int) -> dict | None:
    """The checkpoint state to continue from, or None (and a clean folder) to start fresh."""
    state = run.load_state()
    if state and 0 < state["epochs_done"] < total_epochs:
        return state
    shutil.rmtree(run.checkpoint_dir, ignore_errors=True)
    run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    return None


def load_checkpoint(run: TrainingRun, state: dict) -> keras.Model:
    """The checkpoint's model, with dropout's random state and the learning rate `state` recorded after it.
    Call inside the strategy's scope."""
    model = keras.saving.load_model(run.checkpoint_dir / CHECKPOINT_FILE, safe_mode=True)
    restore_seed_generators(model, state.get("seed_generators", {}))
    if "learning_rate" in state:  # the model file was written before a plateau drop, if one came
        model.optimizer.learning_rate.assign(state["learning_rate"])
    return model


class CheckpointWriter(keras.callbacks.Callback):
    """Writes the epoch's `.keras` checkpoint on a thread while the validation pass and the probe run: neither
    changes a weight or the optimizer's state. The recorder waits for it, then writes state.json, which
    holds what changes after validation (the schedule, the learning rate, the history)."""

    def __init__(self, run: TrainingRun):
        super().__init__()
        self.run, self.thread, self.error = run, None, None

    def on_test_begin(self, logs=None):
        self.wait()  # at most one write at a time
        self.thread = threading.Thread(target=self._write, name="checkpoint", daemon=True)
        self.thread.start()

    def _write(self):
        try:
            self.run.write_next_model(self.model)
        except BaseException as error:  # noqa: BLE001  (re-raised on the training thread by wait())
            self.error = error

    def wait(self) -> bool:
        """Block until the last write is done (re-raising its error); whether there was one."""
        thread, self.thread = self.thread, None
        if thread is None:
            return False
        thread.join()
        error, self.error = self.error, None
        if error is not None:
            raise error
        return True
