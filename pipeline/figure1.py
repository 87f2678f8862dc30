"""DVC stage `figure1`: the paper's Figure 1 (ReLU vs tanh, four-layer net, 32x32) -> reports/figure1/."""

from pathlib import Path

import alexnet.backend  # noqa: F401  (first: sets KERAS_BACKEND from params.yaml)
from alexnet.cli import stage_main
from alexnet.config import load
from alexnet.data.input import load_prepared
from alexnet.figure1 import run


def main() -> None:
    cfg = load()
    result = run(cfg.figure1, load_prepared(Path("data/prepared")), Path("reports/figure1"))
    speedup = f"{result['speedup']:.1f}x" if result["speedup"] else "not measurable (25% not reached)"
    print(f"figure1: ReLU reaches {cfg.figure1.target_error:.0%} training error {speedup} faster than tanh "
          "(paper: 6x); wrote reports/figure1/")  # fmt: skip


if __name__ == "__main__":
    stage_main(main)
