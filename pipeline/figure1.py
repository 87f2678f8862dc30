"""DVC stage `figure1`: the paper's Figure 1 (ReLU vs tanh, four-layer net, 32x32), --prepared -> --out.

figure1.data: cifar10 reads CIFAR-10 (figure1.url / data.cache_dir) instead of --prepared.
"""

import alexnet.backend  # noqa: F401  (first: sets KERAS_BACKEND from params.yaml)
from alexnet.config import load
from alexnet.figure1 import run, training_set
from alexnet.stage import stage_arguments, stage_main


def main() -> None:
    args = stage_arguments(__doc__, {"prepared": "prepared-data folder", "out": "folder for figure1.png/.json"})
    cfg = load()
    result = run(cfg.figure1, training_set(cfg, args.prepared), args.out)
    medians = result["median_epochs_to_target"]
    censored = f">{result['epochs']} (not reached)"
    epochs = {a: censored if value is None else f"{value:g}" for a, value in medians.items()}
    ratio = f"tanh/relu {medians['tanh'] / medians['relu']:.1f}x" if all(medians.values()) else "ratio not measurable"
    print(f"figure1 ({result['data']}): median epochs to {cfg.figure1.target_error:.0%} training error over "
          f"{len(result['seeds'])} seeds: relu {epochs['relu']}, tanh {epochs['tanh']} ({ratio}; paper: 6x); "
          f"wrote {args.out}")  # fmt: skip


if __name__ == "__main__":
    stage_main(main)
