"""The paper's SGD update (Sec. 5) alone on the paper net's 61M weights, side by side: PaperSGD op by op
(keras.ops on TensorFlow), PaperSGD as TensorFlow runs it (one XLA loop per variable,
alexnet/optimizer_tensorflow.py), and torch.optim.SGD with coupled weight decay, `foreach` and `fused`.

Each form runs in its own subprocess at 2 threads; rounds interleaved, median of each round's median
update, median over rounds. Loads in the JSON.

    python bench/optimizer_update.py            # full: 5 rounds of 3 warm-up + 15 timed updates
    python bench/optimizer_update.py --quick    # smoke test; its JSON says "quick": true
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rounds import machine, machine_line, run_round, time_steps, without_verdicts

HERE = Path(__file__).resolve().parent
SHAPES = [(11, 11, 3, 96), (96,), (5, 5, 48, 256), (256,), (3, 3, 256, 384), (384,), (3, 3, 192, 384), (384,),
          (3, 3, 192, 256), (256,), (9216, 4096), (4096,), (4096, 4096), (4096,), (4096, 1000), (1000,)]  # fmt: skip
FORMS = ("keras ops", "keras XLA", "torch foreach", "torch fused")
RESULT_PREFIX = "RESULT "


def keras_worker(form: str, threads: int, warmup: int, steps: int) -> list[float]:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    from alexnet import optimizer_tensorflow
    from alexnet.optimizer import PaperSGD

    if form == "keras ops":
        optimizer_tensorflow.applies = lambda variable: False
    variables = [keras.Variable(tf.random.normal(shape) * 0.01) for shape in SHAPES]
    gradients = [tf.random.normal(shape) * 0.01 for shape in SHAPES]
    optimizer = PaperSGD(learning_rate=0.01, momentum=0.9, weight_decay=0.0005)
    optimizer.build(variables)
    update = tf.function(lambda: optimizer.apply(gradients, variables))  # as inside the compiled train step
    return time_steps(lambda: update(), warmup, steps)


def torch_worker(form: str, threads: int, warmup: int, steps: int) -> list[float]:
    import torch

    torch.set_num_threads(threads)
    parameters = [torch.nn.Parameter(torch.randn(shape) * 0.01) for shape in SHAPES]
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter) * 0.01
    fused = form == "torch fused"
    optimizer = torch.optim.SGD(parameters, lr=0.01, momentum=0.9, weight_decay=0.0005,
                                foreach=not fused, fused=fused)  # fmt: skip
    return time_steps(optimizer.step, warmup, steps)


def measure(form: str, args) -> float:
    command = [sys.executable, __file__, "--worker", form, "--threads", str(args.threads),
               "--warmup", str(args.warmup), "--steps", str(args.steps)]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(args.threads)}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if result.returncode or not lines:
        raise SystemExit(f"{form} failed:\n{result.stderr[-3000:]}")
    return statistics.median(json.loads(lines[-1].removeprefix(RESULT_PREFIX))) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--quick", action="store_true", help="1 round of 1 warm-up + 3 updates")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "optimizer_update.json")
    parser.add_argument("--worker", choices=FORMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = keras_worker if args.worker.startswith("keras") else torch_worker
        print(RESULT_PREFIX + json.dumps(run(args.worker, args.threads, args.warmup, args.steps)), flush=True)
        return
    if args.quick:
        args.rounds, args.warmup, args.steps, args.max_load = 1, 1, 3, float("inf")
    info = machine()
    print(machine_line(info), flush=True)
    started = time.perf_counter()
    rounds = [run_round(lambda: [{"form": form, "ms": measure(form, args)} for form in FORMS],
                        f"round {index + 1}", args.max_load) for index in range(args.rounds)]  # fmt: skip
    ms = {form: statistics.median(row["ms"] for r in rounds for row in r["rows"] if row["form"] == form)
          for form in FORMS}  # fmt: skip
    fastest_torch = min(ms["torch foreach"], ms["torch fused"])
    print(f"\nupdate of {sum(map(math.prod, SHAPES)) / 1e6:.1f}M weights, ms (median of {args.rounds} rounds)")
    for form, value in ms.items():
        print(f"  {form:14} {value:7.1f}")
    print(f"  XLA form: {ms['keras ops'] / ms['keras XLA']:.2f}x faster than op by op; "
          f"{fastest_torch / ms['keras XLA']:.2f}x torch's fastest")  # fmt: skip
    report = {"quick": args.quick, "machine": info, "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "ms": ms, "xla_over_ops": ms["keras ops"] / ms["keras XLA"],
              "xla_over_fastest_torch": fastest_torch / ms["keras XLA"],
              "seconds": round(time.perf_counter() - started, 1), "rounds": rounds}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(without_verdicts(report) if args.quick else report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
