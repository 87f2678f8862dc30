"""Training throughput: the Keras AlexNet against its PyTorch twin (bench/torch_alexnet.py), side by side.

Synthetic in-memory batches, full training steps (forward + backward + update) after warm-up, both sides
at the same thread count. float32 and each side's best mixed precision (Keras mixed_bfloat16, torch
bfloat16 autocast). The machine may be shared, so keras and torch runs alternate over several rounds and
each configuration keeps its best round (median step time within a round). Each run is its own
subprocess, so the two runtimes' thread pools never share a process. Torch gets its best layout:
channels_last, the same LRN formulation as Keras, both tower formulations (grouped conv and split), eager
and torch.compile'd (inductor). Ratios are given against torch's best eager and best compiled runs.

    python bench/train_throughput.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "train_throughput.json"
RESULT_PREFIX = "RESULT "
TORCH_VARIANTS = ("groups", "split", "split+compile")
KERAS_PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--towers", type=int, choices=(1, 2), default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; each config keeps its best"
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 warm-up and 3 timed steps")
    parser.add_argument(
        "--precisions", nargs="+", choices=tuple(KERAS_PRECISIONS), default=["float32", "bfloat16"]
    )
    parser.add_argument(
        "--torch-variants",
        nargs="+",
        choices=TORCH_VARIANTS,
        default=list(TORCH_VARIANTS),
        help="towers as nn.Conv2d(groups=2) or split convs; '+compile' adds torch.compile (inductor)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", choices=("keras", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--precision", choices=tuple(KERAS_PRECISIONS), help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.steps, args.rounds = 2, 3, 2
    return args


def time_steps(step, warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def keras_worker(args) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    from alexnet.config import ModelConfig
    from alexnet.model import build_model
    from alexnet.optimizer import PaperSGD

    keras.mixed_precision.set_global_policy(KERAS_PRECISIONS[args.precision])
    keras.utils.set_random_seed(0)
    paper = ModelConfig(
        architecture="alexnet",
        towers=args.towers,
        activation="relu",
        dropout=0.5,
        lrn=True,
        lrn_alpha_over_n=False,
        pooling="overlapping",
        init="paper",
        width=1.0,
        fc_units=4096,
    )
    model = build_model(paper, args.classes, args.size)
    model.compile(
        optimizer=PaperSGD(learning_rate=0.01, momentum=0.9, weight_decay=0.0005),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    images = tf.random.normal((args.batch, args.size, args.size, 3))
    labels = tf.random.uniform((args.batch,), 0, args.classes, dtype=tf.int32)
    times = time_steps(lambda: model.train_on_batch(images, labels), args.warmup, args.steps)
    return {
        "params": model.count_params(),
        "times": times,
        "version": f"keras {keras.__version__} tf {tf.__version__}",
    }


def torch_worker(args) -> dict:
    import torch
    from torch.nn import functional as F

    sys.path.insert(0, str(HERE))
    from torch_alexnet import AlexNetTwin

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(0)
    channels_last = torch.channels_last
    towers_as = args.variant.removesuffix("+compile")
    model = AlexNetTwin(args.classes, args.towers, towers_as=towers_as, input_size=args.size)
    model = model.to(memory_format=channels_last)
    forward = torch.compile(model) if args.variant.endswith("+compile") else model
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    images = torch.randn(args.batch, 3, args.size, args.size).to(memory_format=channels_last)
    labels = torch.randint(0, args.classes, (args.batch,))
    use_bf16 = args.precision == "bfloat16"

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            loss = F.cross_entropy(forward(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    times = time_steps(step, args.warmup, args.steps)
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "times": times, "version": f"torch {torch.__version__}"}


def measure(args, framework: str, precision: str, variant: str = "") -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        framework,
        "--precision",
        precision,
        "--variant",
        variant,
        "--batch",
        str(args.batch),
        "--size",
        str(args.size),
        "--classes",
        str(args.classes),
        "--towers",
        str(args.towers),
        "--threads",
        str(args.threads),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
    ]
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
    }
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if result.returncode or not lines:
        raise SystemExit(f"{framework} {precision} {variant} failed:\n{result.stderr[-3000:]}")
    raw = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    median = statistics.median(raw["times"])
    row = {
        "framework": framework,
        "precision": precision,
        "variant": variant or "split towers, tf.function",
        "params": raw["params"],
        "step_s_median": round(median, 4),
        "step_s_all": [round(t, 4) for t in raw["times"]],
        "images_per_s": round(args.batch / median, 2),
        "version": raw["version"],
    }
    print(
        f"  {framework:6} {precision:9} {row['variant']:26} {row['images_per_s']:8.1f} img/s  "
        f"(load {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return row


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        work = keras_worker if args.worker == "keras" else torch_worker
        print(RESULT_PREFIX + json.dumps(work(args)), flush=True)
        return
    print(
        f"batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, {args.rounds} rounds of "
        f"{args.warmup} warm-up + {args.steps} timed steps per measurement",
        flush=True,
    )
    runs = []
    for round_index in range(args.rounds):
        print(f"round {round_index + 1}", flush=True)
        for precision in args.precisions:
            runs.append(measure(args, "keras", precision))
            runs.extend(measure(args, "torch", precision, variant) for variant in args.torch_variants)
    rows = []
    for run in runs:
        key = (run["framework"], run["precision"], run["variant"])
        same = [r for r in runs if (r["framework"], r["precision"], r["variant"]) == key]
        if run is max(same, key=lambda r: r["images_per_s"]):
            rows.append({**run, "images_per_s_all_rounds": [r["images_per_s"] for r in same]})

    def best(framework, precision, compiled=None):
        candidates = [r for r in rows if r["framework"] == framework and r["precision"] == precision]
        if compiled is not None:
            candidates = [r for r in candidates if r["variant"].endswith("+compile") == compiled]
        return max(candidates, key=lambda r: r["images_per_s"], default=None)

    ratios = {}
    header = f"{'precision':10} {'keras':>8} {'torch eager':>12} {'ratio':>7} {'torch compiled':>15} ratio"
    print(f"\nimages/s (ratio = keras/torch)\n{header}")
    for precision in args.precisions:
        keras_ips = best("keras", precision)["images_per_s"]
        line = f"{precision:10} {keras_ips:8.1f}"
        for compiled, label in ((False, "eager"), (True, "compiled")):
            torch_row = best("torch", precision, compiled)
            if torch_row is None:
                line += f" {'-':>12} {'-':>7}" if not compiled else f" {'-':>15} {'-':>7}"
                continue
            ratio = round(keras_ips / torch_row["images_per_s"], 3)
            ratios[f"{precision}_vs_torch_{label}"] = ratio
            width = 15 if compiled else 12
            line += f" {torch_row['images_per_s']:{width}.1f} {ratio:6.2f}x"
        print(line)

    report = {
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("worker", "precision", "variant", "output")
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "results": rows,
        "all_runs": runs,
        "keras_over_torch": ratios,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
