"""A training interrupted after epoch k and resumed ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_copy import small_raw_data

from alexnet import callbacks, checkpoint, training
from alexnet.run_identity import NEXT_CHECKPOINT_FILE


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from alexnet.data.input import load_prepared
    from alexnet.data.preprocess import preprocess

    def three_deterministic_epochs(raw):
        raw["train"].update(epochs=3, deterministic=True, lr_patience=1)
        raw["tracking"]["enabled"] = False

    root = tmp_path_factory.mktemp("resume")
    _, cfg, raw_dir = small_raw_data(root, three_deterministic_epochs)
    preprocess(cfg.preprocess, raw_dir, root / "prepared", progress=False)
    return cfg, load_prepared(root / "prepared")


def _run(folder):
    folder.mkdir(parents=True)
    return checkpoint.TrainingRun(folder / "model.keras", folder / "history.csv", folder / "checkpoints", "same")


def test_resumed_training_matches_an_uninterrupted_one(tmp_path, prepared, monkeypatch):
    from alexnet.tracking import Tracker

    cfg, data = prepared
    tracker = Tracker(cfg.tracking)
    whole, _ = training.train(cfg, data, _run(tmp_path / "whole"), tracker, state=None, verbose=0)

    interrupted = _run(tmp_path / "interrupted")
    record = callbacks.EpochRecorder.on_epoch_end

    def killed_after_epoch_two(self, epoch, logs=None):
        record(self, epoch, logs)
        if epoch + 1 == 2:
            raise Killed

    monkeypatch.setattr(callbacks.EpochRecorder, "on_epoch_end", killed_after_epoch_two)
    with pytest.raises(Killed):
        training.train(cfg, data, interrupted, tracker, state=None, verbose=0)
    monkeypatch.setattr(callbacks.EpochRecorder, "on_epoch_end", record)

    state = checkpoint.resume_state(interrupted, cfg.train.epochs)
    assert state["epochs_done"] == 2
    resumed, rows = training.train(cfg, data, interrupted, tracker, state=state, verbose=0)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    for expected, actual in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(expected, actual)
    assert float(whole.optimizer.learning_rate) == float(resumed.optimizer.learning_rate)



def test_a_run_killed_during_validation_resumes_from_its_last_whole_epoch_at_its_rate(tmp_path, prepared, monkeypatch):
    """The checkpoint is written on a thread during validation, before a plateau drop at the epoch's end: a
    run killed in epoch 3's validation resumes from epoch 2's checkpoint, at the rate dropped after epoch 2."""
    from alexnet.tracking import Tracker

    cfg, data = prepared
    plateau = cfg.train.model_copy(update={"schedule": "plateau", "lr_patience": 1, "lr_max_drops": 3})
    cfg = cfg.model_copy(update={"train": plateau})
    schedule_end = callbacks.PlateauSchedule.on_epoch_end

    def never_improves(self, epoch, logs=None):  # a drop after every epoch but the first
        return schedule_end(self, epoch, {**logs, "val_top1": 0.5})

    monkeypatch.setattr(callbacks.PlateauSchedule, "on_epoch_end", never_improves)
    tracker = Tracker(cfg.tracking)
    whole, _ = training.train(cfg, data, _run(tmp_path / "whole"), tracker, state=None, verbose=0)

    interrupted = _run(tmp_path / "interrupted")
    probe = callbacks.TrainErrorProbe.on_epoch_end

    def killed_in_epoch_three(self, epoch, logs=None):
        if epoch + 1 == 3:
            raise Killed
        probe(self, epoch, logs)

    monkeypatch.setattr(callbacks.TrainErrorProbe, "on_epoch_end", killed_in_epoch_three)
    with pytest.raises(Killed):
        training.train(cfg, data, interrupted, tracker, state=None, verbose=0)
    monkeypatch.setattr(callbacks.TrainErrorProbe, "on_epoch_end", probe)
    assert (interrupted.checkpoint_dir / NEXT_CHECKPOINT_FILE).is_file()  # epoch 3's, never moved in

    state = checkpoint.resume_state(interrupted, cfg.train.epochs)
    assert state["epochs_done"] == 2 and state["learning_rate"] == pytest.approx(cfg.train.learning_rate * 0.1)
    resumed, rows = training.train(cfg, data, interrupted, tracker, state=state, verbose=0)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    for expected, actual in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(expected, actual)
    assert float(whole.optimizer.learning_rate) == float(resumed.optimizer.learning_rate)
