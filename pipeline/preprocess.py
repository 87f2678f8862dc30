"""DVC stage `preprocess`: resized TFRecord shards and train-split stats, --raw -> --out."""

from alexnet.config import load
from alexnet.data.preprocess import preprocess
from alexnet.quiet import import_tensorflow
from alexnet.stage import stage_arguments, stage_main


def main() -> None:
    args = stage_arguments(__doc__, {"raw": "ingested raw-data folder", "out": "prepared-data folder to write"})
    cfg = load()
    import_tensorflow()  # here, not at its first use inside preprocess: without its start-up noise
    summary = preprocess(cfg.preprocess, raw_dir=args.raw, out_dir=args.out)
    failed = f", {len(summary.failed)} failed to decode (listed in stats.json)" if summary.failed else ""
    print(f"preprocess: wrote {summary.written} images to {args.out}{failed}")


if __name__ == "__main__":
    stage_main(main)
