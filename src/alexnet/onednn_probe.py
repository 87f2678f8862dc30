"""The child process `alexnet.backend` starts to time oneDNN on or off (TF_ENABLE_ONEDNN_OPTS is set by it).

    python -m alexnet.onednn_probe params.yaml   ->  one JSON line: {"images_per_second": ..., "rates": {...}}

It times params.yaml's baseline model as training builds it, under each policy `train.precision` may pick
(float32 and mixed_bfloat16 for `auto`): oneDNN's worth is the rate of the faster, since bfloat16 is fast
only with oneDNN's kernels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import alexnet.backend  # noqa: F401  (first: KERAS_BACKEND; TF_ENABLE_ONEDNN_OPTS is the parent's)

NUM_CLASSES = 10  # the rate hardly depends on the output count; the prepared data need not exist yet


def main(params_file: Path) -> None:
    from alexnet import precision
    from alexnet.config import load
    from alexnet.model import build_model
    from alexnet.runtime import compile_model

    cfg = load(params_file)

    def build():
        model = build_model(cfg.model, NUM_CLASSES, cfg.train.crop)
        compile_model(model, cfg, NUM_CLASSES, jit=False)
        return model

    policies = precision.CPU_CANDIDATES if cfg.train.precision == "auto" else (cfg.train.precision,)
    rates = precision.time_policies(
        build, policies, (cfg.train.crop, cfg.train.crop, 3), NUM_CLASSES, cfg.train.batch_size, steps=3, rounds=1
    )
    print(json.dumps({"images_per_second": max(rates.values()), "rates": rates}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
