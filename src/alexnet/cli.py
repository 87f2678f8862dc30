"""Command line: `alexnet predict` and `alexnet ui`."""

from __future__ import annotations

import argparse
import os

from alexnet.predict import add_predict_command
from alexnet.stage import stage_main

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _ui(args: argparse.Namespace) -> None:
    from alexnet.tracking.ui import study_view_link, ui_command

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
    add_predict_command(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    stage_main(lambda: args.handler(args))


if __name__ == "__main__":
    main()
