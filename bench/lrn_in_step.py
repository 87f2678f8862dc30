"""What LRN costs inside the float32 paper-net step (224 px, batch 64, two towers, 2 threads), and how much of it
any separate layer would cost: the paper net with its LRN, with LRN replaced by a layer that only applies the
ReLU and copies (one XLA loop forward, one backward, the same hand-written-gradient structure), with a plain
TensorFlow copy, and without the layer (the convolution applies its ReLU). The copy's cost is memory traffic,
the floor under any LRN that is its own layer.
Medians of interleaved rounds; JSON in bench/results/.

    python bench/lrn_in_step.py            # 3 rounds of 6 timed steps per net, about 4 minutes on 2 cores
    python bench/lrn_in_step.py --quick    # smoke test: batch 4, 64 px, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rounds import machine, machine_line  # noqa: E402

HERE = Path(__file__).resolve().parent


def copies():
    """Layers that only copy, as LRN's stand-ins: like LRN they take the convolution's linear output and apply its
    ReLU (forward max(x, 0), backward the gradient where x > 0)."""
    import tensorflow as tf

    from alexnet.model.lrn_tensorflow import with_gradient

    def forward(x):
        return tf.nn.relu(x) * 1.0001

    def backward(x, upstream):  # reads what LRN's backward reads
        return tf.where(x > 0, upstream * 0.9999 + x * 1e-9, tf.zeros_like(upstream))

    compiled = tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    xla_forward, xla_backward = compiled(forward), compiled(backward)

    def xla_copy(inputs, *settings, **options):  # always rectifies, as the model's LRN does
        return with_gradient(inputs, xla_forward, xla_backward)

    def plain_copy(inputs, *settings, **options):
        return with_gradient(inputs, forward, backward)

    return xla_copy, plain_copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "lrn_in_step.json")
    args = parser.parse_args()
    batch, size = (4, 64) if args.quick else (64, 224)
    rounds = 1 if args.quick else args.rounds
    print(machine_line(machine()), flush=True)
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    import alexnet.model.lrn_tensorflow as lrn_tensorflow
    from alexnet.config import ModelConfig
    from alexnet.model import build_model
    from alexnet.optimizer import PaperSGD

    xla_copy, plain_copy = copies()
    real = lrn_tensorflow.local_response_normalization
    variants = {"paper (LRN)": (True, real), "XLA copy": (True, xla_copy), "TF copy": (True, plain_copy),
                "no LRN": (False, real)}  # fmt: skip
    images = tf.random.normal((batch, size, size, 3))
    labels = tf.random.uniform((batch,), 0, 1000, dtype=tf.int32)
    models = {}
    for name, (lrn, form) in variants.items():
        lrn_tensorflow.local_response_normalization = form  # read when the step is traced, just below
        config = ModelConfig(architecture="alexnet", towers=2, activation="relu", dropout=0.5,
                             dropout_scaling="inverted", lrn=lrn, lrn_alpha_over_n=False, pooling="overlapping",
                             init="paper", width=1.0, fc_units=4096)  # fmt: skip
        keras.utils.set_random_seed(0)
        model = build_model(config, 1000, size)
        model.compile(optimizer=PaperSGD(learning_rate=0.01, momentum=0.9, weight_decay=0.0005),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
        for _ in range(3):
            model.train_on_batch(images, labels)
        models[name] = model
    lrn_tensorflow.local_response_normalization = real
    rates = {name: [] for name in models}
    for index in range(rounds):
        for name, model in models.items():
            times = []
            for _ in range(args.steps):
                started = time.perf_counter()
                model.train_on_batch(images, labels)
                times.append(time.perf_counter() - started)
            rates[name].append(batch / statistics.median(times))
        print(f"round {index + 1}: " + ", ".join(f"{name} {rate[-1]:.1f}" for name, rate in rates.items()), flush=True)
    median = {name: round(statistics.median(values), 1) for name, values in rates.items()}
    without = median["no LRN"]
    share = {name: round(1 - rate / without, 3) for name, rate in median.items() if name != "no LRN"}
    print(f"\nimg/s, float32, median of {rounds} rounds: {median}")
    print("share of the step against no layer: " + ", ".join(f"{name} {value:.0%}" for name, value in share.items()))
    report = {"quick": args.quick, "batch": batch, "size": size, "machine": machine(), "img_s": median,
              "share_of_step": share, "rounds": rates}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
