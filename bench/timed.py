"""Where a real epoch goes: alexnet.training's phases (alexnet.callbacks, alexnet.checkpoint) timed by wrapping them,
for bench/epoch_time.py."""

from __future__ import annotations

import contextlib
import gc
import resource
import statistics
import time


@contextlib.contextmanager
def timed_phases():
    """Within the block, phases[name] = [calls, seconds of the last call] for the validation pass (fit's
    evaluate), the train-error probe, the checkpoint and the whole epoch recorder; phases["epoch_starts"]
    holds each epoch's start. The wrapped methods are restored afterwards.

    On TensorFlow the model file is written on a thread while validation runs (checkpoint.CheckpointWriter), so
    validation_s includes its contention and checkpoint_s is the wait for it plus state.json.

    phases["validation_detail"] is epoch 2's validation pass in detail: its batches' median and slowest step
    (and which), the cores the process kept busy and Python's garbage collection time. A stall in one batch
    (a compile, a collection) and a pass slow throughout (contention) read differently there."""
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
    detail = _ValidationDetail(phases)
    gc.callbacks.append(detail.on_gc)
    keras.Model.evaluate = detail.wrap(keras.Model.evaluate)
    callbacks.EpochRecorder.on_test_batch_end = detail.on_test_batch_end
    try:
        yield phases
    finally:
        del callbacks.EpochRecorder.on_test_batch_end
        gc.callbacks.remove(detail.on_gc)
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


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _ValidationDetail:
    """Batch ends, CPU seconds and GC seconds within each evaluate call; epoch 2's kept in phases."""

    def __init__(self, phases: dict):
        self.phases, self.batch_ends, self.gc_seconds, self.gc_started = phases, [], 0.0, None

    def on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.gc_started = time.perf_counter()
        elif self.gc_started is not None:
            self.gc_seconds += time.perf_counter() - self.gc_started

    def on_test_batch_end(self, batch, logs=None) -> None:
        self.batch_ends.append(time.perf_counter())

    def wrap(self, evaluate):
        def timed(*args, **kwargs):
            self.batch_ends, gc_before, cpu_before = [time.perf_counter()], self.gc_seconds, _cpu_seconds()
            try:
                return evaluate(*args, **kwargs)
            finally:
                wall = time.perf_counter() - self.batch_ends[0]
                if len(self.phases["epoch_starts"]) == 2 and len(self.batch_ends) > 1:
                    ends = self.batch_ends
                    steps = [ends[index + 1] - ends[index] for index in range(len(ends) - 1)]
                    slowest = max(range(len(steps)), key=steps.__getitem__)
                    self.phases["validation_detail"] = {
                        "batches": len(steps), "median_batch_s": round(statistics.median(steps), 4),
                        "slowest_batch": slowest, "slowest_batch_s": round(steps[slowest], 3),
                        "cores_busy": round((_cpu_seconds() - cpu_before) / wall, 2),
                        "gc_s": round(self.gc_seconds - gc_before, 3),
                    }  # fmt: skip

        return timed
