"""DVC stage `ingest`: the chosen ImageNet subset and its manifest -> --out (images/, manifest.csv, classes.json)."""

from pathlib import Path

from alexnet.config import load
from alexnet.data.ingest import ingest
from alexnet.stage import stage_arguments, stage_main


def main() -> None:
    args = stage_arguments(__doc__, {"out": "raw-data folder to write"})
    cfg = load()
    ingest(cfg.data, out_dir=args.out, workdir=Path(cfg.data.cache_dir).expanduser())
    print(f"ingest: wrote {args.out} (images/, manifest.csv, classes.json)")


if __name__ == "__main__":
    stage_main(main)
