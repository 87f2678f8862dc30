"""Where the Keras paper-net training step goes: TensorFlow's profiler over a few steps, ops run one at a time
(inter-op parallelism 1) so their times add up, grouped by kind; each convolution layer's rate in GFLOP/s beside
this machine's float32 (or bfloat16) matmul rate through the same kernels (oneDNN when it is on). A convolution
near that rate leaves nothing to win in it; the rest of the step is what a faster Keras could still cut.

    python bench/step_profile.py                          # paper net, 224 px, batch 64, float32, 4 profiled steps
    python bench/step_profile.py --precision mixed_bfloat16
    env ONEDNN_MAX_CPU_ISA=AVX2 XLA_FLAGS=--xla_cpu_max_isa=AVX2 TF_ENABLE_ONEDNN_OPTS=1 python bench/step_profile.py
    python bench/step_profile.py --quick                  # smoke test: 64 px, batch 8; its JSON says "quick"

One process, no rounds: a profile, not a speed figure (the step under the profiler is a few % slower; the
unprofiled step is printed beside it). An XLA cluster counts from its launch to its end, its waits for the
thread pool included, so "XLA loops" is an upper bound on the loops' own time.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rounds import machine, machine_line, time_steps  # noqa: E402
from train_throughput import paper_model  # noqa: E402

HERE = Path(__file__).resolve().parent
XLA_LAUNCH = "CpuExecutable::ExecuteAsyncOnStream"  # one XLA cluster's run: its loops are not TensorFlow ops
STEP_EVENT = "EagerLocalExecute: __inference_one_step_on_data"  # one call of Keras' compiled train step
KINDS = {  # TensorFlow op type (oneDNN's or not) -> what it is in the step
    "convolutions": ("Conv2D", "FusedConv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
                     "Conv2DBackpropFilterWithBias"),
    "fully connected (matmuls)": ("MatMul", "FusedMatMul", "BatchMatMulV2"),
    "XLA loops (LRN, optimizer update)": ("ExecuteAsyncOnStream",),
    "pooling": ("MaxPool", "MaxPoolGrad"),
    "tower split / concat / slice": ("Split", "SplitV", "ConcatV2", "Slice"),
}  # fmt: skip


def op_kind(op_type: str) -> str:
    bare = op_type.removeprefix("_MklNative").removeprefix("_Mkl")
    return next((kind for kind, types in KINDS.items() if bare in types or op_type in types), "other ops")


def is_conv_of(op: str, layer: str) -> bool:
    """Whether the trace's `op` (e.g. gradient_tape/alexnet_1/conv3_1/convolution/Conv2DBackpropInput:_Mkl...) is
    one of the convolutions of the Keras layer named `layer`."""
    name, _, op_type = op.rpartition(":")
    return f"/{layer}_" in name and op_kind(op_type) == "convolutions"


def conv_layer_flops(model, batch: int) -> dict[str, float]:
    """Multiply-adds x 2 of each convolution layer's forward pass; its two backward passes cost as much each
    (the first layer has only the filter gradient: nothing needs the image's)."""
    from alexnet.model.alexnet import TowerConv2D

    flops = {}
    for layer in model.layers:
        if isinstance(layer, TowerConv2D):
            _, height, width, channels_out = layer.output.shape
            kernel_height, kernel_width, channels_in_per_group, _ = layer.kernel.shape
            forward = 2 * batch * height * width * channels_out * channels_in_per_group * kernel_height * kernel_width
            flops[layer.name] = forward * (3 if flops else 2)
    return flops


MATMUL_SIZE = 4096


def matmul_rate(dtype: str, size: int = MATMUL_SIZE, repeats: int = 3) -> float:
    """GFLOP/s of a large square matmul through TensorFlow's kernels (the best of `repeats`): about what a
    convolution can reach here."""
    import tensorflow as tf

    kind = tf.bfloat16 if "bfloat16" in dtype else tf.float32
    a, b = (tf.cast(tf.random.normal((size, size)), kind) for _ in range(2))
    matmul = tf.function(lambda: tf.linalg.matmul(a, b))
    times = time_steps(lambda: matmul().numpy(), 1, repeats)
    return 2 * size**3 / min(times) / 1e9


def profile_ops(step, steps: int) -> collections.Counter:
    """Milliseconds per step of each TensorFlow op (name:type) on the host, from the profiler's trace of
    `steps` + 1 steps: the first one traced is dropped (starting the trace slows it)."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps + 1):
            step()
        tf.profiler.experimental.stop()
        (trace,) = Path(logdir).rglob("*.xplane.pb")
        space = xplane_pb2.XSpace.FromString(trace.read_bytes())
    (host,) = (plane for plane in space.planes if plane.name == "/host:CPU")
    name_of = host.event_metadata
    events = [(line.timestamp_ns * 1000 + event.offset_ps, event.duration_ps, name_of[event.metadata_id].name)
              for line in host.lines for event in line.events]  # fmt: skip
    step_starts = sorted(start for start, _, name in events if name.startswith(STEP_EVENT))
    assert len(step_starts) == steps + 1, f"{len(step_starts)} steps in the trace, not {steps + 1}"
    per_op = collections.Counter()
    for start, duration, name in events:
        # "op:Type" is one op; "Class::method" events wrap ops (counted once, as their ops), except XLA's
        if start >= step_starts[1] and ((":" in name and "::" not in name and ": " not in name) or name == XLA_LAUNCH):
            per_op[name] += duration / 1e9 / steps
    return per_op


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32")
    parser.add_argument("--steps", type=int, default=4, help="profiled steps (after 3 warm-up and 5 timed ones)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "step_profile.json")
    args = parser.parse_args()
    batch, size = (8, 64) if args.quick else (64, 224)

    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)  # one op at a time: op times add up to the step
    info = machine()
    print(machine_line(info), flush=True)
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(args.precision)
    model = paper_model(towers=2, lrn=True, classes=1000, size=size)
    images = tf.random.normal((batch, size, size, 3))
    labels = tf.random.uniform((batch,), 0, 1000, dtype=tf.int32)
    step = lambda: model.train_on_batch(images, labels)  # noqa: E731
    step_s = statistics.median(time_steps(step, 3, 5))
    per_op = profile_ops(step, args.steps)
    peak = matmul_rate(args.precision)

    by_kind = collections.Counter()
    for name, ms in per_op.items():
        by_kind[op_kind(name.rsplit(":", 1)[-1])] += ms
    total = sum(by_kind.values())
    print(f"\nbatch {batch}, {size} px, {args.precision}: step {step_s * 1000:.0f} ms unprofiled; ops "
          f"{total:.0f} ms/step under the profiler")  # fmt: skip
    for kind, ms in by_kind.most_common():
        print(f"  {kind:36} {ms:7.0f} ms  {ms / total:5.1%}")

    flops = conv_layer_flops(model, batch)
    layers = {}
    for layer, layer_flops in flops.items():
        ms = sum(t for name, t in per_op.items() if is_conv_of(name, layer))
        layers[layer] = {"ms": round(ms, 1), "gflop": round(layer_flops / 1e9, 2),
                         "gflop_per_s": round(layer_flops / 1e9 / (ms / 1000), 1) if ms else None}  # fmt: skip
    print(f"\nconvolutions, forward and backward (a {MATMUL_SIZE}x{MATMUL_SIZE} matmul here: {peak:.0f} GFLOP/s)")
    for layer, row in layers.items():
        rate = row["gflop_per_s"]
        share = f"{rate / peak:5.0%} of the matmul rate" if rate else "not found in the trace"
        print(f"  {layer:6} {row['ms']:7.0f} ms  {row['gflop']:6.1f} GFLOP  {rate or 0:6.0f} GFLOP/s  {share}")

    report = {
        "quick": args.quick,
        "settings": {"precision": args.precision, "batch": batch, "size": size, "profiled_steps": args.steps,
                     "inter_op_threads": 1, "intra_op_threads": 2},  # fmt: skip
        "machine": info,
        "step_ms_unprofiled": round(step_s * 1000, 1),
        "ops_ms_per_step": round(total, 1),
        "by_kind_ms": {kind: round(ms, 1) for kind, ms in by_kind.most_common()},
        "matmul_gflop_per_s": round(peak, 1),
        "conv_layers": layers,
        "ops_ms": {name: round(ms, 2) for name, ms in per_op.most_common()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
