"""Command line: `alexnet predict`, `alexnet ui`, `alexnet report` and `alexnet export-runs`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

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


def _report(args: argparse.Namespace) -> None:
    from alexnet.report_datasets import load_study, parse_study_argument, write_studies_report
    from alexnet.reports import report_from_folder
    from alexnet.runs import RunsError

    if len(args.runs) == 1 and "=" not in args.runs[0]:
        report = report_from_folder(Path(args.runs[0]), args.out, args.figure1)
        print(f"report: {len(report.rows)} variants, {len(report.claims)} claims -> {report.markdown}")
        return
    if args.figure1 is not None:
        raise RunsError("--figure1: only with one runs folder; with NAME=RUNS, figure1/figure1.json beside RUNS "
                        "is used")
    studies = [load_study(*parse_study_argument(text)) for text in args.runs]
    markdown = write_studies_report(studies, args.out)
    print(f"report: {len(studies)} studies side by side -> {markdown}")


def _export_runs(args: argparse.Namespace) -> None:
    from alexnet.runs import export_runs

    written = export_runs(args.workspace, args.out, args.variants)
    print(f"export-runs: {len(written)} files -> {args.out}")


def add_report_commands(commands) -> None:
    report = commands.add_parser("report", help="render a study's report from a folder of runs, without training")
    report.add_argument("runs", nargs="+", metavar="RUNS",
                        help="folder of <variant>-s<seed>/ runs (e.g. docs/study/runs), or several studies side "
                             "by side as NAME=RUNS (e.g. imagenette=docs/study/runs tiny100=docs/tiny100/runs)")
    report.add_argument("--out", type=Path, required=True, help="folder for ablations.md/.json, claims.png, curves")
    report.add_argument(
        "--figure1", type=Path, default=None, help="figure1.json (default: figure1/figure1.json beside RUNS, if any)"
    )
    report.set_defaults(handler=_report)
    export = commands.add_parser("export-runs", help="copy a workspace's runs into a runs folder (results only)")
    export.add_argument("workspace", type=Path, help="a project copy that ran the study (its models/, reports/runs/)")
    export.add_argument("out", type=Path, help="the runs folder to fill (e.g. docs/study/runs)")
    export.add_argument("--variants", nargs="+", default=None, help="only these variants (default: all)")
    export.set_defaults(handler=_export_runs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alexnet", description="AlexNet reproduction tools")
    commands = parser.add_subparsers(dest="command", required=True)
    ui = commands.add_parser("ui", help="open the project's MLflow store in the MLflow UI")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=_ui)
    add_predict_command(commands)
    add_report_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    stage_main(lambda: args.handler(args))


if __name__ == "__main__":
    main()
