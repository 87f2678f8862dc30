"""LRN alone, forward + backward, at the paper net's two LRN layers (batch 64, two towers): the keras.ops form
(autodiff), the TensorFlow form (what the model uses on TensorFlow: a hand-written gradient; in float32 each
pass one XLA-compiled loop, in bfloat16 a bfloat16 band matmul between XLA loops), in bfloat16 also the
float32 form's XLA loops ("XLA loops"), the earlier TensorFlow forms (bench/lrn_candidates.py: the same
gradient, the XLA loops with each tower padded on its own, and the window sum as a float32 band matmul
without XLA) and tf.nn.local_response_normalization (per tower), each in float32 and bfloat16.
Median of interleaved rounds; loads in the JSON.
The share of LRN in a whole training step is train_throughput.py's "no LRN" comparison.

    python bench/lrn.py            # full: 5 rounds of 5 timed calls, about 4 minutes on 2 quiet cores
    python bench/lrn.py --quick    # smoke test; its JSON says "quick": true
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rounds import machine, machine_line, run_round  # noqa: E402

HERE = Path(__file__).resolve().parent
SHAPES = {"lrn1 (conv1)": (55, 96), "lrn2 (conv2)": (27, 256)}


def lrn_forms(layer, dtype: str) -> dict:
    """The forms timed side by side; each takes and returns the input dtype."""
    import tensorflow as tf
    from lrn_candidates import band_matmul_form, padded_towers_form

    from alexnet.model.lrn_tensorflow import fused_form

    def per_tower(inputs):
        towers = tf.split(tf.cast(inputs, tf.float32), 2, axis=-1)
        normalized = [tf.nn.local_response_normalization(t, 2, 2.0, 1e-4, 0.75) for t in towers]
        return tf.cast(tf.concat(normalized, -1), inputs.dtype)

    def ops_form(inputs):
        return layer.call_ops(inputs)

    def band_matmul(inputs):
        return band_matmul_form(inputs, layer.depth, layer.k, layer.alpha, layer.beta, layer.groups)

    def padded_towers(inputs):
        return padded_towers_form(inputs, layer.depth, layer.k, layer.alpha, layer.beta, layer.groups)

    def xla_loops(inputs):
        width = inputs.shape[-1] // layer.groups
        return fused_form(inputs, layer.depth, layer.k, layer.alpha, layer.beta, layer.groups, width)

    forms = {"keras.ops": ops_form, "tensorflow": layer.call}
    forms |= {"XLA loops": xla_loops} if dtype == "bfloat16" else {}
    forms |= {"XLA loops, padded towers (previous)": padded_towers, "band matmul, no XLA": band_matmul}
    return forms | {"tf.nn.lrn": per_tower}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--dtypes", nargs="+", choices=("float32", "bfloat16"), default=["float32", "bfloat16"],
                        help="the input dtype: a mixed_bfloat16 model feeds LRN bfloat16")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="batch 8, 1 round of 2 calls")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "lrn.json")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.rounds, args.calls, args.max_load = 8, 1, 2, float("inf")

    print(machine_line(machine()), flush=True)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from alexnet.model import LocalResponseNormalization

    forms = {}
    for dtype in args.dtypes:
        for name, (size, channels) in SHAPES.items():
            shape = (args.batch, size, size, channels)
            x = tf.cast(tf.random.stateless_normal(shape, seed=(0, 1)) * 10, dtype)
            upstream = tf.cast(tf.random.stateless_normal(shape, seed=(0, 2)), dtype)
            layer = LocalResponseNormalization(groups=2)
            layer.build(shape)
            for form, function in lrn_forms(layer, dtype).items():

                @tf.function
                def step(x=x, upstream=upstream, function=function):
                    with tf.GradientTape() as tape:
                        tape.watch(x)
                        y = function(x)
                    return tape.gradient(y, x, output_gradients=upstream)

                step()  # trace
                forms[(f"{name} {dtype}", form)] = step

    def one_round():
        rows = []
        for (name, form), step in forms.items():
            times = []
            for _ in range(args.calls):
                started = time.perf_counter()
                step().numpy()
                times.append(time.perf_counter() - started)
            rows.append({"layer": name, "form": form, "ms": statistics.median(times) * 1000})
        return rows

    rounds = [run_round(one_round, f"round {index + 1}", args.max_load) for index in range(args.rounds)]
    results = {}
    for name, form in forms:
        values = [row["ms"] for one in rounds for row in one["rows"] if (row["layer"], row["form"]) == (name, form)]
        results.setdefault(name, {})[form] = round(statistics.median(values), 1)
    print(f"\nforward + backward, ms (median of {args.rounds} rounds), batch {args.batch}")
    for name, by_form in results.items():
        base = by_form["keras.ops"]
        print(f"{name:14}" + "".join(f"  {form} {ms:7.1f} ({base / ms:.2f}x)" for form, ms in by_form.items()))
    report = {"quick": args.quick, "settings": vars(args) | {"out": str(args.out)}, "machine": machine(),
              "ms": results, "rounds": rounds}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
