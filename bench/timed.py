"""Where a real epoch goes: alexnet.training's phases (alexnet.callbacks, alexnet.checkpoint) timed by wrapping them,
for bench/epoch_time.py."""

from __future__ import annotations

import contextlib
import time


@contextlib.contextmanager
def timed_phases():
    """Within the block, phases[name] = [calls, seconds of the last call] for the validation pass (fit's
    evaluate), the train-error probe, the checkpoint and the whole epoch recorder; phases["epoch_starts"]
    holds each epoch's start. The wrapped methods are restored afterwards.

    On TensorFlow the model file is written on a thread while validation runs (checkpoint.CheckpointWriter), so
    validation_s includes its contention and checkpoint_s is the wait for it plus state.json."""
    import keras

    from alexnet import callbacks, checkpoint

    phases: dict = {"epoch_starts": []}
    wrapped = [
        (keras.Model, "evaluate", "validation_s"),
        (callbacks.TrainErrorProbe, "on_epoch_end", "probe_s"),
        (checkpoint.TrainingRun, "save_checkpoint", "checkpoint_s"),
        (callbacks.EpochRecorder, "on_epoch_end", "recorder_s"),
    ]
    originals = [(owner, name, owner.__dict__.get(name)) for owner, name, _ in wrapped]
    for owner, name, phase in wrapped:
        setattr(owner, name, _timing(getattr(owner, name), phases, phase))
    begin = callbacks.EpochRecorder.on_epoch_begin

    def stamped(self, epoch, logs=None):
        phases["epoch_starts"].append(time.perf_counter())
        return begin(self, epoch, logs)

    callbacks.EpochRecorder.on_epoch_begin = stamped
    try:
        yield phases
    finally:
        callbacks.EpochRecorder.on_epoch_begin = begin
        for owner, name, original in originals:
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def _timing(method, phases: dict, phase: str):
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            calls = phases.get(phase, [0, 0.0])[0] + 1
            if len(phases["epoch_starts"]) <= 2:  # keep epoch 2's (the timed epoch's) figure
                phases[phase] = [calls, time.perf_counter() - started]

    return timed
