"""Train the synthetic profile once: python synth_run.py SEED PRECISION [key=value ...]; prints a JSON line."""
# ruff: noqa: E402  (kept as it ran; imports after sys.path is set)

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, "/work/main/tests")
import yaml
from pipeline_copy import read_params

from alexnet.config import TrackingConfig, parse

seed, precision, *overrides = sys.argv[1:]
raw = read_params()
for item in overrides:
    key, value = item.split("=", 1)
    *sections, leaf = key.split(".")
    node = raw
    for s in sections:
        node = node[s]
    node[leaf] = yaml.safe_load(value)
raw["train"]["precision"] = precision
raw["data"]["cache_dir"] = "/tmp/synth-cache"
cfg = parse(raw, variant="baseline", seed=int(seed))
from alexnet.checkpoint import TrainingRun
from alexnet.data.ingest import ingest
from alexnet.data.input import load_prepared
from alexnet.data.preprocess import preprocess
from alexnet.tracking import Tracker
from alexnet.training import train

with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    ingest(cfg.data, root / "raw", root / "work", progress=False)
    preprocess(cfg.preprocess, root / "raw", root / "prepared", progress=False)
    tracker = Tracker(TrackingConfig(**{**cfg.tracking.model_dump(), "enabled": False}))
    run = TrainingRun(root / "m/model.keras", root / "m/history.csv", root / "m/ck", "sweep")
    (root / "m").mkdir()
    t0 = time.time()
    _, rows = train(cfg, load_prepared(root / "prepared"), run, tracker, state=None, verbose=0)
    print(
        json.dumps(
            {
                "seed": int(seed),
                "precision": precision,
                "overrides": overrides,
                "val": [round(r["val_top1_error"], 4) for r in rows],
                "train": [round(r["train_eval_top1_error"], 4) for r in rows],
                "loss": [round(r["loss"], 3) for r in rows],
                "val_loss": [round(r["val_loss"], 3) for r in rows],
                "lr": [float(r.get("learning_rate", float("nan"))) for r in rows],
                "train_s": round(time.time() - t0, 1),
            }
        ),
        flush=True,
    )
