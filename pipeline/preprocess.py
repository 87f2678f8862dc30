"""DVC stage `preprocess`: resized TFRecord shards and train-split stats -> data/prepared/."""

from pathlib import Path

from alexnet.cli import stage_main
from alexnet.config import load
from alexnet.data.preprocess import preprocess


def main() -> None:
    cfg = load()
    summary = preprocess(cfg.preprocess, raw_dir=Path("data/raw"), out_dir=Path("data/prepared"))
    failed = f", {len(summary.failed)} failed to decode (listed in stats.json)" if summary.failed else ""
    print(f"preprocess: wrote {summary.written} images to data/prepared{failed}")


if __name__ == "__main__":
    stage_main(main)
