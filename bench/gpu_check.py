"""GPU check: the paper-size AlexNet trained on random 224x224 batches under Keras on JAX, mixed precision.

Needs only jax, keras and numpy (no TensorFlow, no tf.data), so it runs where TensorFlow with CUDA
cannot be installed. Prints images/s (from the median step), the peak device memory and whether the
loss fell; --json writes the same numbers.

    python bench/gpu_check.py                      # paper size: 224, batch 256, 1000 classes
    python bench/gpu_check.py --size 64 --batch 8 --steps 6 --width 0.25 --fc-units 64 --classes 10   # CPU smoke

The batches are generated once and kept on the device, so the timing is the training step, not the
host-to-device copy. Glorot init (not the paper's N(0, 0.01), whose loss stays flat for many steps) so
that "the loss fell" means something after a few steps: the net memorises the few fixed batches.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from alexnet.config import ModelConfig  # noqa: E402
from alexnet.model import build_model  # noqa: E402
from alexnet.optimizer import PaperSGD  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="input crop (paper: 224)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="timed steps, after --warmup")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (compilation)")
    parser.add_argument("--batches", type=int, default=2, help="distinct random batches, cycled")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--fc-units", type=int, default=4096)
    parser.add_argument("--towers", type=int, default=2, choices=(1, 2))
    parser.add_argument("--precision", default="mixed_bfloat16", choices=("mixed_bfloat16", "mixed_float16", "float32"))
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args(argv)


def peak_memory() -> tuple[str, int | None]:
    """Peak bytes on the first device (XLA's allocator stats); on CPU, which has none, the process peak RSS."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return "device", int(stats["peak_bytes_in_use"])
    return "host RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None) -> dict:
    args = parse_args(argv)
    keras.mixed_precision.set_global_policy(args.precision)
    # No keras.utils.set_random_seed: it would import TensorFlow (to seed it) wherever it is installed. Keras'
    # unseeded initializers and dropout draw their seeds from Python's `random`, so this fixes the weights.
    random.seed(0)
    config = ModelConfig(
        architecture="alexnet", towers=args.towers, activation="relu", dropout=0.5, dropout_scaling="inverted",
        lrn=True, lrn_alpha_over_n=False, pooling="overlapping", init="glorot", width=args.width,
        fc_units=args.fc_units,
    )  # fmt: skip
    model = build_model(config, args.classes, args.size)
    # The paper's rule and recipe (Sec. 5): momentum 0.9, weight decay 0.0005; float16 gets loss scaling.
    model.compile(
        optimizer=PaperSGD(learning_rate=0.01, momentum=0.9, weight_decay=0.0005),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    rng = np.random.default_rng(0)
    batches = [
        (
            jax.device_put(rng.normal(0, 60, (args.batch, args.size, args.size, 3)).astype(np.float32)),
            jax.device_put(rng.integers(0, args.classes, args.batch).astype(np.int32)),
        )
        for _ in range(args.batches)
    ]
    losses, seconds = [], []
    for step in range(args.warmup + args.steps):
        images, labels = batches[step % len(batches)]
        started = time.perf_counter()
        loss = model.train_on_batch(images, labels)  # returns a host float: waits for the step to finish
        elapsed = time.perf_counter() - started
        losses.append(float(loss))
        if step >= args.warmup:
            seconds.append(elapsed)
    where, peak = peak_memory()
    window = max(1, min(5, len(losses) // 3))
    first, last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    result = {
        "device": jax.devices()[0].device_kind,
        "platform": jax.default_backend(),
        "precision": args.precision,
        "input": args.size,
        "batch": args.batch,
        "params": int(model.count_params()),
        "steps": args.steps,
        "median_step_seconds": float(np.median(seconds)),
        "images_per_second": args.batch / float(np.median(seconds)),
        "peak_memory": where,
        "peak_memory_bytes": peak,
        "loss_first": first,
        "loss_last": last,
        "loss_fell": bool(np.isfinite(last) and last < first),
    }
    print(f"gpu_check: {result['device']} ({result['platform']}), {args.precision}, {args.size}x{args.size}, "
          f"batch {args.batch}, {result['params']:,} params")  # fmt: skip
    print(f"  {result['images_per_second']:,.0f} img/s (median of {args.steps} steps, "
          f"{result['median_step_seconds'] * 1000:.1f} ms/step)")  # fmt: skip
    print(f"  peak {where} memory: {peak / 2**30:.2f} GiB" if peak else f"  peak {where} memory: not reported")
    print(f"  loss {first:.3f} -> {last:.3f}: {'fell' if result['loss_fell'] else 'did NOT fall'}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")
    return result


if __name__ == "__main__":
    main()
