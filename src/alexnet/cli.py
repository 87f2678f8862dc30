"""Command line: `alexnet predict`, `alexnet ui`, and the error handling every stage script shares."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from alexnet.config import ConfigError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# What a user causes (params, paths, files, data, the network): one line and exit 2, never a traceback.
# ConfigError is a ValueError; TrackingError and DownloadError are OSErrors.
USER_ERRORS = (ConfigError, ValueError, OSError)


def stage_main(body: Callable[[], None]) -> None:
    """Run a stage body; a user error is one line on stderr and exit status 2 (ALEXNET_DEBUG=1: the traceback)."""
    try:
        body()
    except USER_ERRORS as error:
        if os.environ.get("ALEXNET_DEBUG"):
            raise
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)


def matrix_arguments(description: str) -> tuple[str, int]:
    """VARIANT SEED, the two matrix values a train@/evaluate@ stage is called with."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("variant", help="a name under ablations.variants in params.yaml")
    parser.add_argument("seed", type=int, help="the replicate seed (one of ablations.seeds)")
    args = parser.parse_args()
    return args.variant, args.seed


def _ui(args: argparse.Namespace) -> None:
    from alexnet.tracking import study_view_link, ui_command

    command = ui_command(args.host, args.port)
    print(f"MLflow UI on http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    link = study_view_link(f"http://{args.host}:{args.port}")
    if link:
        print(f"The study view (key metric columns, val error curves): {link}", flush=True)
    os.execv(command[0], command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alexnet", description="AlexNet reproduction tools")
    commands = parser.add_subparsers(dest="command", required=True)
    ui = commands.add_parser("ui", help="open the project's MLflow store in the MLflow UI")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=_ui)
    try:
        from alexnet.predict import add_predict_command
    except ImportError:
        pass
    else:
        add_predict_command(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    stage_main(lambda: args.handler(args))


if __name__ == "__main__":
    main()
