"""Training throughput: the Keras AlexNet against its PyTorch twin (bench/torch_alexnet.py), side by side.

Synthetic in-memory batches, full training steps (forward + backward + update) after warm-up, both sides
at the same thread count, each run in its own subprocess (the runtimes' thread pools never share one).
float32 and each side's mixed precision (Keras mixed_bfloat16, torch bfloat16 autocast). Torch gets
every layout: channels_last, the Keras LRN formulation, towers as a grouped conv or split convs, eager
and torch.compile'd (inductor).

Under the AVX2 emulation (ONEDNN_MAX_CPU_ISA=AVX2) torch's code outside oneDNN is capped as well
(alexnet.cpu.torch_code_caps: MKL's GEMMs, torch.compile's vector width and, eager, ATen's kernels), as
XLA_FLAGS caps XLA's; each torch row records its caps. The fastest twin also runs uncapped ("groups+compile,
uncapped"): the headline is against the capped twins, and the ratio against the uncapped one is printed beside it.

Every configuration runs once per round, rounds interleaved; its rate is the median over rounds of each
round's median step. A round is repeated (at most 3 more times) while other processes keep more than 1.5
cores busy (bench/rounds.py); each round's loads are in the JSON. Reported:
- the headline: Keras in its faster precision against the fastest torch configuration in its faster one;
- the paper net's rate as a fraction of the same net without LRN (Keras, each precision);
- `precision: auto` (alexnet.precision, timed in each round on a fresh cache): its choice, and how far
  the chosen policy's rate falls below the faster one's.

    python bench/train_throughput.py            # full: 3 rounds of 3 warm-up + 10 timed steps
    python bench/train_throughput.py --quick    # smoke test; its JSON says "quick": true
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

from rounds import machine, machine_line, median_rate, run_round, time_steps, without_verdicts

from alexnet.cpu import MKL_ISA_CAP, TORCH_ISA_CAP, torch_code_caps

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "train_throughput.json"
RESULT_PREFIX = "RESULT "
TORCH_VARIANTS = ("groups", "split", "groups+compile", "split+compile")
UNCAPPED = ", uncapped"  # the label of the torch twin whose code keeps AVX-512 under the emulation
KERAS_PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
REVERSE_PRECISIONS = {policy: name for name, policy in KERAS_PRECISIONS.items()}


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
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is kept")
    parser.add_argument("--max-load", type=float, default=1.5, help="repeat a round when others use more")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round, 1 warm-up + 2 timed steps, "
                        "64 px; marked quick in the JSON, never for the README")  # fmt: skip
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
    parser.add_argument("--no-auto", dest="auto", action="store_false",
                        help="skip timing `precision: auto` (it times bfloat16 too: with oneDNN off, about 40 s a "
                        "step at 224 px on 2 cores)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", choices=("keras", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--precision", choices=tuple(KERAS_PRECISIONS), help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="", help=argparse.SUPPRESS)
    parser.add_argument("--simdlen", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.steps, args.rounds, args.size, args.batch = 1, 2, 1, 64, 16
        args.max_load = float("inf")  # loads are recorded, busy rounds not repeated
    return args


def paper_model(towers: int, lrn: bool, classes: int, size: int):
    """The paper net (Sec. 3) compiled with the paper's SGD (Sec. 5), as the benchmarks time it."""
    import keras

    from alexnet.config import ModelConfig
    from alexnet.model import build_model
    from alexnet.optimizer import PaperSGD

    paper = ModelConfig(architecture="alexnet", towers=towers, activation="relu", dropout=0.5,
                        dropout_scaling="inverted", lrn=lrn, lrn_alpha_over_n=False, pooling="overlapping",
                        init="paper", width=1.0, fc_units=4096)  # fmt: skip
    model = build_model(paper, classes, size)
    model.compile(optimizer=PaperSGD(learning_rate=0.01, momentum=0.9, weight_decay=0.0005),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    return model


def keras_worker(args) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    keras.utils.set_random_seed(0)

    def build():
        return paper_model(args.towers, args.variant != "no LRN", args.classes, args.size)

    version = f"keras {keras.__version__} tf {tf.__version__}"
    if args.variant == "auto":  # what `precision: auto` would choose here, timed as training does
        from alexnet import precision

        rates = precision.time_policies(build, precision.CPU_CANDIDATES, (args.size, args.size, 3),
                                        args.classes, args.batch)  # fmt: skip
        return {"params": 0, "times": [], "auto_rates": rates, "version": version,
                "auto_choice": max(rates, key=rates.get)}  # fmt: skip
    keras.mixed_precision.set_global_policy(KERAS_PRECISIONS[args.precision])
    model = build()
    images = tf.random.normal((args.batch, args.size, args.size, 3))
    labels = tf.random.uniform((args.batch,), 0, args.classes, dtype=tf.int32)
    times = time_steps(lambda: model.train_on_batch(images, labels), args.warmup, args.steps)
    return {"params": model.count_params(), "times": times, "version": version}


def torch_worker(args) -> dict:
    import torch
    from torch.nn import functional as F

    sys.path.insert(0, str(HERE))
    from torch_alexnet import AlexNetTwin

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(0)
    if args.simdlen:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.simdlen = args.simdlen
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
    result = {"params": params, "times": times, "version": f"torch {torch.__version__}"}
    if args.variant.endswith("+compile"):
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        result["inductor_isa"] = str(pick_vec_isa())  # what the generated loops were vectorized for
    return result


def measure(args, framework: str, precision: str, variant: str = "", capped: bool = True) -> dict:
    """One configuration in its own process. A torch one gets the emulation's caps (none natively) unless
    `capped` is False."""
    command = [
        sys.executable, __file__, "--worker", framework, "--precision", precision, "--variant", variant,
        "--batch", str(args.batch), "--size", str(args.size), "--classes", str(args.classes),
        "--towers", str(args.towers), "--threads", str(args.threads), "--warmup", str(args.warmup),
        "--steps", str(args.steps),
    ]  # fmt: skip
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
    }
    caps = torch_code_caps(compiled=variant.endswith("+compile")) if framework == "torch" and capped else {}
    if framework == "torch" and not capped:  # not even caps the caller's environment set
        env = {name: value for name, value in env.items() if name not in (MKL_ISA_CAP, TORCH_ISA_CAP)}
    env.update({name: caps[name] for name in (MKL_ISA_CAP, TORCH_ISA_CAP) if name in caps})
    if "inductor_simdlen" in caps:
        command += ["--simdlen", str(caps["inductor_simdlen"])]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if result.returncode or not lines:
        raise SystemExit(f"{framework} {precision} {variant} failed:\n{result.stderr[-3000:]}")
    raw = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    if variant == "auto":
        print(f"  keras  auto: chose {raw['auto_choice']} ({raw['auto_rates']})", flush=True)
        return {"framework": framework, "precision": "auto", "variant": "auto", **raw}
    median = statistics.median(raw["times"])
    row = {
        "framework": framework,
        "precision": precision,
        "variant": (variant or "paper") + ("" if capped else UNCAPPED),
        "code_caps": caps,
        **({"inductor_isa": raw["inductor_isa"]} if "inductor_isa" in raw else {}),
        "params": raw["params"],
        "step_s_median": round(median, 4),
        "step_s_all": [round(t, 4) for t in raw["times"]],
        "images_per_s": round(args.batch / median, 2),
        "version": raw["version"],
    }
    print(f"  {framework:6} {precision:9} {row['variant']:24} {row['images_per_s']:8.1f} img/s", flush=True)
    return row


def one_round(args) -> list[dict]:
    rows = []
    for precision in args.precisions:
        rows.append(measure(args, "keras", precision))
        rows.append(measure(args, "keras", precision, "no LRN"))
        rows.extend(measure(args, "torch", precision, variant) for variant in args.torch_variants)
        if torch_code_caps() and "groups+compile" in args.torch_variants:
            rows.append(measure(args, "torch", precision, "groups+compile", capped=False))
    if args.auto:
        rows.append(measure(args, "keras", "float32", "auto"))
    return rows


def summarize(args, rounds: list[dict]) -> dict:
    """Median over rounds per configuration; the headline, LRN and auto figures from those medians."""
    runs = [row for one in rounds for row in one["rows"] if row["variant"] != "auto"]
    configs: dict[tuple, dict] = {}
    for row in runs:
        key = (row["framework"], row["precision"], row["variant"])
        entry = configs.setdefault(key, {k: row[k] for k in ("framework", "precision", "variant", "params",
                                                                 "version")} | {"images_per_s_rounds": []})  # fmt: skip
        entry["images_per_s_rounds"].append(row["images_per_s"])
    for entry in configs.values():
        entry["images_per_s"] = round(median_rate(entry["images_per_s_rounds"]), 2)
    rate = {key: entry["images_per_s"] for key, entry in configs.items()}

    keras_best = max((key for key in rate if key[0] == "keras" and key[2] == "paper"), key=rate.get)
    torch_best = max((key for key in rate if key[0] == "torch" and not key[2].endswith(UNCAPPED)), key=rate.get)
    headline = {"keras": {"precision": keras_best[1], "images_per_s": rate[keras_best]},
                "torch": {"precision": torch_best[1], "variant": torch_best[2], "images_per_s": rate[torch_best]},
                "ratio": round(rate[keras_best] / rate[torch_best], 3), "goal": 1.3}  # fmt: skip
    uncapped = [key for key in rate if key[0] == "torch" and key[2].endswith(UNCAPPED)]
    if uncapped:
        fastest = max(uncapped, key=rate.get)
        headline["torch_uncapped"] = {"precision": fastest[1], "variant": fastest[2], "images_per_s": rate[fastest],
                                      "ratio": round(rate[keras_best] / rate[fastest], 3)}  # fmt: skip
    headline["goal_met"] = headline["ratio"] >= 1.3
    lrn = {}
    for precision in args.precisions:
        with_lrn, without = rate[("keras", precision, "paper")], rate[("keras", precision, "no LRN")]
        lrn[precision] = {"paper_img_s": with_lrn, "no_lrn_img_s": without,
                          "fraction_of_no_lrn": round(with_lrn / without, 3),
                          "lrn_share_of_step": round(1 - with_lrn / without, 3)}  # fmt: skip
    lrn["goal_share_at_most"] = 0.10
    lrn["goal_met"] = lrn[keras_best[1]]["lrn_share_of_step"] <= 0.10
    auto_runs = [row for one in rounds for row in one["rows"] if row["variant"] == "auto"]
    best_policy_rate = max(rate[("keras", p, "paper")] for p in args.precisions)
    choices = [row["auto_choice"] for row in auto_runs]
    shortfalls = [
        round(1 - rate[("keras", REVERSE_PRECISIONS[choice], "paper")] / best_policy_rate, 3)
        for choice in choices if REVERSE_PRECISIONS.get(choice) in args.precisions
    ]  # fmt: skip
    auto = {"choices": choices, "rates_per_round": [row["auto_rates"] for row in auto_runs],
            "shortfall_per_round": shortfalls, "worst_shortfall": max(shortfalls, default=None),
            "goal_shortfall_at_most": 0.05}  # fmt: skip
    auto["goal_met"] = (bool(shortfalls) and max(shortfalls) <= 0.05) if args.auto else None
    return {"configs": list(configs.values()), "headline": headline, "lrn": lrn, "auto": auto}


def print_tables(args, summary: dict) -> None:
    rate = {(c["framework"], c["precision"], c["variant"]): c["images_per_s"] for c in summary["configs"]}
    variants = ["paper", "no LRN"] + list(args.torch_variants)
    variants += sorted({c["variant"] for c in summary["configs"] if c["variant"].endswith(UNCAPPED)})
    widths = [max(16, len(v) + 2) for v in variants]
    header = "".join(f"{v:>{w}}" for v, w in zip(variants, widths, strict=True))
    print(f"\nimages/s, median of {args.rounds} rounds\n{'':10}" + header)
    for precision in args.precisions:
        cells = [rate.get(("keras", precision, v)) or rate.get(("torch", precision, v)) for v in variants]
        row = (f"{c:{w}.1f}" if c else f"{'-':>{w}}" for c, w in zip(cells, widths, strict=True))
        print(f"{precision:10}" + "".join(row))
    h, lrn, auto = summary["headline"], summary["lrn"], summary["auto"]
    print(f"\nheadline: keras {h['keras']['precision']} {h['keras']['images_per_s']:.1f} img/s vs fastest torch "
          f"({h['torch']['precision']}, {h['torch']['variant']}) {h['torch']['images_per_s']:.1f}: "
          f"{h['ratio']:.2f}x (goal >= 1.3: {'met' if h['goal_met'] else 'not met'})")
    if "torch_uncapped" in h:
        uncapped = h["torch_uncapped"]
        print(f"  against torch {uncapped['variant']} (AVX-512 code outside oneDNN, not an AVX2 CPU's): "
              f"{uncapped['images_per_s']:.1f} img/s, {uncapped['ratio']:.2f}x")
    for precision in args.precisions:
        print(f"LRN {precision}: paper net at {lrn[precision]['fraction_of_no_lrn']:.2f} of the no-LRN rate "
              f"(LRN {lrn[precision]['lrn_share_of_step']:.0%} of the step)")
    if args.auto:
        print(f"auto chose {auto['choices']}; worst shortfall {auto['worst_shortfall']} (goal <= 0.05: "
              f"{'met' if auto['goal_met'] else 'not met'})")  # fmt: skip


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        work = keras_worker if args.worker == "keras" else torch_worker
        print(RESULT_PREFIX + json.dumps(work(args)), flush=True)
        return
    print(machine_line(machine()), flush=True)
    print(
        f"batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, {args.rounds} rounds of "
        f"{args.warmup} warm-up + {args.steps} timed steps per measurement" + (" (QUICK)" if args.quick else ""),
        flush=True,
    )
    started = time.perf_counter()
    rounds = [
        run_round(lambda: one_round(args), f"round {index + 1}", args.max_load) for index in range(args.rounds)
    ]
    summary = summarize(args, rounds)
    print_tables(args, summary)
    report = {
        "quick": args.quick,
        "full_protocol": not args.quick and args.rounds >= 3 and args.steps >= 10,
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("worker", "precision", "variant", "output")
        },
        "machine": {**machine(), "python": platform.python_version()},
        "seconds": round(time.perf_counter() - started, 1),
        **summary,
        "rounds": [{k: v for k, v in one.items()} for one in rounds],
    }
    report = without_verdicts(report) if args.quick else report
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
