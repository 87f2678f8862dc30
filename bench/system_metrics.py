"""What MLflow's system-metrics monitor (`tracking.system_metrics: true`) costs a training step.

Rounds alternate off/on; each round is one MLflow run (a throw-away SQLite store) around `fit` on fixed
in-memory batches of params.yaml's model at its crop size. Prints the median step time of each arm, their
ratio, and the load average beside each round; writes JSON. Needs psutil (MLflow's monitor uses it).

    python bench/system_metrics.py [--rounds 6] [--steps 40] [--interval 10] [--json bench/results/x.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from alexnet.config import load  # noqa: E402
from alexnet.model import build_model  # noqa: E402
from alexnet.tracking import Tracker, tracked_run  # noqa: E402


class StepTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.started)


def system_samples(database: Path, run_id: str) -> int:
    """How many CPU-utilisation samples the monitor logged for the run (0 = it did not run)."""
    with sqlite3.connect(database) as db:
        (count,) = db.execute(
            "select count(*) from metrics where run_uuid = ? and key = 'system/cpu_utilization_percentage'", (run_id,)
        ).fetchone()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds per arm, interleaved")
    parser.add_argument("--steps", type=int, default=40, help="training steps per round")
    parser.add_argument("--interval", type=float, default=10.0, help="MLflow's sampling interval, seconds")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = str(args.interval)

    cfg = load()
    classes, crop, batch = 10, cfg.train.crop, cfg.train.batch_size
    rng = np.random.default_rng(0)
    images = rng.normal(0, 60, (batch * 4, crop, crop, 3)).astype(np.float32)
    labels = rng.integers(0, classes, batch * 4)
    model = build_model(cfg.model, classes, crop)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=batch, epochs=1, verbose=0)  # compile and warm up outside the rounds

    store = Path(tempfile.mkdtemp(prefix="sysmetrics-"))
    rounds: dict[str, list[dict]] = {"off": [], "on": []}
    for index in range(args.rounds):
        for arm in ("off", "on") if index % 2 == 0 else ("on", "off"):
            tracking = cfg.tracking.model_copy(
                update={"uri": f"sqlite:///{store / 'mlflow.db'}", "system_metrics": arm == "on", "enabled": True}
            )
            tracker = Tracker(tracking, store).connect()
            timer = StepTimes()
            load_before = os.getloadavg()[0]
            with tracked_run(tracker, f"{arm}-{index}", {}, None, system_metrics=True):
                epochs = -(-args.steps // 4)
                cpu_before = time.process_time()
                model.fit(images, labels, batch_size=batch, epochs=epochs, verbose=0, callbacks=[timer])
                cpu = (time.process_time() - cpu_before) / len(timer.times)  # all threads, monitor included
            step = statistics.median(timer.times)
            samples = system_samples(store / "mlflow.db", tracker.run_id)
            rounds[arm].append({"median_step_s": step, "cpu_s_per_step": cpu, "load1": load_before,
                                "system_samples": samples})  # fmt: skip
            print(f"round {index} {arm:3s}: median step {step * 1000:7.1f} ms  cpu/step {cpu * 1000:7.1f} ms  "
                  f"load {load_before:.1f}  "
                  f"system samples {samples}", flush=True)  # fmt: skip
    off = statistics.median(r["median_step_s"] for r in rounds["off"])
    on = statistics.median(r["median_step_s"] for r in rounds["on"])
    ratio = on / off
    spread = [a["median_step_s"] / b["median_step_s"] for a, b in zip(rounds["on"], rounds["off"], strict=True)]
    assert all(r["system_samples"] > 0 for r in rounds["on"]), "the monitor logged nothing: longer rounds"
    cpu_ratio = statistics.median(r["cpu_s_per_step"] for r in rounds["on"]) / statistics.median(
        r["cpu_s_per_step"] for r in rounds["off"]
    )
    print(f"median step: off {off * 1000:.1f} ms, on {on * 1000:.1f} ms; on/off {ratio:.4f} "
          f"(paired rounds {min(spread):.3f}..{max(spread):.3f}); CPU time per step on/off {cpu_ratio:.4f}; "
          f"sampling every {args.interval:g} s")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from rounds import machine

        summary = {"machine": machine(), "interval_s": args.interval, "steps": args.steps, "ratio_on_off": ratio,
                   "cpu_ratio_on_off": cpu_ratio, "paired_ratios": spread, "rounds": rounds}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
