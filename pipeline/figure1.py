"""DVC stage `figure1`: the paper's Figure 1 (ReLU vs tanh, four-layer net, 32x32), --prepared -> --out."""

import alexnet.backend  # noqa: F401  (first: sets KERAS_BACKEND from params.yaml)
from alexnet.config import load
from alexnet.data.input import load_prepared
from alexnet.figure1 import run
from alexnet.stage import stage_arguments, stage_main


def main() -> None:
    args = stage_arguments(__doc__, {"prepared": "prepared-data folder", "out": "folder for figure1.png/.json"})
    cfg = load()
    result = run(cfg.figure1, load_prepared(args.prepared), args.out)
    speedup = f"{result['speedup']:.1f}x" if result["speedup"] else "not measurable (25% not reached)"
    print(f"figure1: ReLU reaches {cfg.figure1.target_error:.0%} training error {speedup} faster than tanh "
          f"(paper: 6x); wrote {args.out}")  # fmt: skip


if __name__ == "__main__":
    stage_main(main)
