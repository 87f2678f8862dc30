"""End to end: a real epoch of the default profile (input pipeline, steps, validation, callbacks with the
checkpoint) against the pure `train_on_batch` rate of the same model in the precision `auto` chose.

The data: params.yaml's default profile on the whole imagenette2-224 archive (as data.source 'folder';
preprocess.size and train.crop from params.yaml, so the images match the Imagenette-160 default).
`auto` is calibrated on a fresh cache, exactly as the train stage does. Then, in each of --rounds
interleaved rounds: alexnet.training.train() for 3 epochs (epoch 2, from its start to the start of
epoch 3, is the real epoch: it includes the checkpoint and history written after it), and train_on_batch
on one in-memory batch under each candidate policy (the epoch-equivalent time: steps_per_epoch times
the median step). Medians over rounds; a round is repeated while the machine is busy (bench/rounds.py).

The JSON's epoch_phases_s says where epoch 2 went (bench/timed.py); machine names the CPU flags, oneDNN
on or off (TF_ENABLE_ONEDNN_OPTS or TensorFlow's default) and ONEDNN_MAX_CPU_ISA (an emulation of that ISA's
kernels on this CPU, not such a CPU).

    python bench/epoch_time.py            # full: 3 rounds, about 6-8 minutes on 2 quiet cores
    python bench/epoch_time.py --quick    # smoke test on 250 images, 1 round; its JSON says "quick": true
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from input_pipeline import ARCHIVE, SHA256  # noqa: E402
from rounds import machine, machine_line, run_round, without_verdicts  # noqa: E402
from timed import timed_phases  # noqa: E402

EPOCHS = 3  # epoch 1 traces; epoch 2 is timed from its start to epoch 3's


def train_on_batch_rate(cfg, num_classes: int, policy: str, steps: int) -> float:
    """Images/s of train_on_batch alone: the model as training builds it, one in-memory batch."""
    import keras

    from alexnet.model import build_model
    from alexnet.runtime import compile_model

    keras.mixed_precision.set_global_policy(policy)
    model = build_model(cfg.model, num_classes, cfg.train.crop)
    compile_model(model, cfg, num_classes, jit=False)
    rng = np.random.default_rng(0)
    images = rng.normal(0, 60, (cfg.train.batch_size, cfg.train.crop, cfg.train.crop, 3)).astype("float32")
    labels = rng.integers(0, num_classes, cfg.train.batch_size).astype("int32")
    for _ in range(2):
        model.train_on_batch(images, labels)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(images, labels)
        times.append(time.perf_counter() - started)
    keras.mixed_precision.set_global_policy("float32")
    return cfg.train.batch_size / statistics.median(times)


def real_epoch_seconds(cfg, data, folder: Path) -> dict:
    """alexnet.training.train() for EPOCHS epochs: the wall time of epoch 2 from one epoch start to the next,
    and where it went (validation pass, train-error probe, checkpoint, the recorder's other work; the rest is
    the training steps with their input pipeline)."""
    from alexnet import checkpoint, training
    from alexnet.tracking import Tracker

    folder.mkdir(parents=True)
    run = checkpoint.TrainingRun(folder / "model.keras", folder / "history.csv", folder / "checkpoints", "bench")
    with timed_phases() as phases:
        _, rows = training.train(cfg, data, run, Tracker(cfg.tracking), state=None, verbose=0)
    starts = phases["epoch_starts"]
    epoch = {name: phases[name][1] for name in ("validation_s", "probe_s", "checkpoint_s", "recorder_s")}
    epoch["history_and_logging_s"] = epoch.pop("recorder_s") - epoch["checkpoint_s"]
    epoch_s = starts[2] - starts[1]
    epoch["steps_and_input_s"] = epoch_s - sum(epoch.values())
    return {"epoch_s": epoch_s, "recorded_epoch_s": rows[1]["seconds"], "images_per_s": rows[1]["images_per_second"],
            "phases": {name: round(seconds, 3) for name, seconds in epoch.items()},
            "validation_detail": phases.get("validation_detail")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed train_on_batch steps per policy and round")
    parser.add_argument("--max-load", type=float, default=1.5, help="repeat a round when others use more")
    parser.add_argument("--quick", action="store_true", help="smoke test: 250 images, 1 round, 3 steps")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "epoch_time.json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = 1, 3
        args.max_load = float("inf")  # loads are recorded, busy rounds not repeated
    if not args.archive.is_file():
        sys.exit(f"error: {args.archive} not found; pass --archive PATH to imagenette2-224.tgz")

    from alexnet import precision
    from alexnet.config import parse
    from alexnet.data.ingest import ingest
    from alexnet.data.input import load_prepared, steps_per_epoch
    from alexnet.data.preprocess import preprocess
    from alexnet.runtime import choose_precision, choose_xla

    started = time.perf_counter()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    per_class = (20, 5) if args.quick else (None, None)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        params["data"].update(source="folder", url=str(args.archive), sha256=SHA256, classes=10,
                              train_per_class=per_class[0], val_per_class=per_class[1],
                              cache_dir=str(scratch / "cache"))  # fmt: skip
        params["train"]["epochs"] = EPOCHS
        params["tracking"]["enabled"] = False
        if args.quick:
            params["train"]["batch_size"] = 32
        cfg = parse(params)
        ingest(cfg.data, scratch / "raw", workdir=scratch / "work", progress=False)
        preprocess(cfg.preprocess, scratch / "raw", scratch / "prepared", progress=False)
        data = load_prepared(scratch / "prepared")
        steps = steps_per_epoch(data, cfg.train.batch_size)
        choice = choose_precision(cfg, data.num_classes, choose_xla(cfg.train.xla))  # fresh cache: measured
        print(choice.line(), flush=True)
        print(machine_line(machine()), flush=True)
        # a policy rated 0 does not run here (bfloat16 convolutions under ONEDNN_MAX_CPU_ISA=AVX2 with oneDNN on)
        candidates = [policy for policy, rate in choice.rates.items() if rate > 0] or [choice.policy]

        def one_round():
            epoch = real_epoch_seconds(cfg, data, scratch / f"run-{time.monotonic_ns()}")
            rates = {policy: train_on_batch_rate(cfg, data.num_classes, policy, args.steps) for policy in candidates}
            print(f"  epoch {epoch['epoch_s']:.1f} s {epoch['phases']}; train_on_batch {rates}", flush=True)
            print(f"  epoch 2's validation: {epoch['validation_detail']}", flush=True)
            return [{**epoch, "train_on_batch_img_s": rates}]

        rounds = [run_round(one_round, f"round {index + 1}", args.max_load) for index in range(args.rounds)]
    rows = [one["rows"][0] for one in rounds]
    epoch_s = statistics.median(row["epoch_s"] for row in rows)
    rates = {policy: statistics.median(row["train_on_batch_img_s"][policy] for row in rows) for policy in candidates}
    pure_epoch_s = steps * cfg.train.batch_size / rates[choice.policy]
    phases = {name: round(statistics.median(row["phases"][name] for row in rows), 2) for name in rows[0]["phases"]}
    fastest = max(rates, key=rates.get)
    results = {
        "quick": args.quick,
        "full_protocol": not args.quick and args.rounds >= 3,
        "machine": {**machine(), "device": precision.device()[0], "versions": precision.backend_version()},
        "profile": {"crop": cfg.train.crop, "batch_size": cfg.train.batch_size, "train_images": data.counts["train"],
                    "val_images": data.counts["val"], "steps_per_epoch": steps,
                    "model": cfg.model.model_dump()},  # fmt: skip
        "auto": {"choice": choice.policy, "calibration_img_s": choice.rates,
                 "shortfall_vs_fastest_policy": round(1 - rates[choice.policy] / rates[fastest], 3),
                 "goal_shortfall_at_most": 0.05},  # fmt: skip
        "real_epoch_s": round(epoch_s, 2),
        "train_on_batch_img_s": {policy: round(rate, 1) for policy, rate in rates.items()},
        "train_on_batch_epoch_s": round(pure_epoch_s, 2),
        "epoch_phases_s": phases,
        "epoch_over_train_on_batch": round(epoch_s / pure_epoch_s, 3),
        "goal_at_most": 1.15,
        "seconds": round(time.perf_counter() - started, 1),
        "rounds": rounds,
    }
    results["goal_met"] = results["epoch_over_train_on_batch"] <= 1.15
    results["auto"]["goal_met"] = results["auto"]["shortfall_vs_fastest_policy"] <= 0.05
    print(f"\nreal epoch {epoch_s:.1f} s vs train_on_batch alone {pure_epoch_s:.1f} s ({choice.policy}): "
          f"{results['epoch_over_train_on_batch']:.2f}x (goal <= 1.15: {'met' if results['goal_met'] else 'not met'})")
    print("where epoch 2 went (s, median over rounds): " + ", ".join(f"{k} {v}" for k, v in phases.items()))
    print(f"auto chose {choice.policy}; train_on_batch {results['train_on_batch_img_s']} img/s; shortfall "
          f"{results['auto']['shortfall_vs_fastest_policy']:.1%} (goal <= 5%)")  # fmt: skip
    results = without_verdicts(results) if args.quick else results
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
