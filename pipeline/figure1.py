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
    censored = f">{result['epochs']} (not reached)"
    for init, measured in result["by_init"].items():
        medians = measured["median_epochs_to_target"]
        epochs = {a: censored if value is None else f"{value:g}" for a, value in medians.items()}
        measurable = all(medians.values())
        ratio = f"tanh/relu {medians['tanh'] / medians['relu']:.1f}x" if measurable else "ratio not measurable"
        print(f"figure1 ({result['data']}, init {init}): median epochs to {cfg.figure1.target_error:.0%} training "
              f"error over {len(measured['seeds'])} seeds: relu {epochs['relu']}, tanh {epochs['tanh']} ({ratio}; "
              f"paper: 6x; rates {measured['best_learning_rate']} chosen on seed {result['tuning_seed']})")  # fmt: skip
    print(f"figure1: wrote {args.out}")

if __name__ == "__main__":
    stage_main(main)
