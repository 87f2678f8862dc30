"""One report over several studies (datasets or profiles): the same claim side by side, each with its own
estimate, interval and verdicts, and Holm once over every claim tested in all of them.

`alexnet report NAME=RUNS [NAME=RUNS ...] --out DIR`. Each study keeps its own folder of runs (and Figure 1's
results beside it); its single-study report, figures included, goes to DIR/<NAME>/, with the same family-wide Holm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from alexnet.claims import FAMILY_ALPHA, ClaimResult, apply_holm, evaluate_claims
from alexnet.report_claims import claim_row, holm_text
from alexnet.reports import VERDICT_RULE, claims_summary, figure1_beside, render_report
from alexnet.run_identity import FIGURE1_PLOT
from alexnet.runs import RunResult, RunsError, load_runs

NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass
class Study:
    name: str  # a folder name and a column label: imagenette, tiny100, dropout48...
    runs: list[RunResult]
    figure1: dict | None = None
    figure1_png: Path | None = None  # drawn beside figure1.json; copied next to the study's own report
    source: Path | None = None  # its runs folder: linked as DIR/<name>/runs, so the report sits beside its runs
    claims: list[ClaimResult] = field(default_factory=list)

    @property
    def described(self) -> str:
        classes = min(int(run.metrics["classes"]) for run in self.runs)
        epochs = sorted({run.epochs for run in self.runs})
        seeds = sorted({run.seed for run in self.runs})
        return (f"{len(self.runs)} runs, {classes} classes, {'/'.join(map(str, epochs))} epochs, "
                f"seeds {seeds}")  # fmt: skip


def parse_study_argument(text: str) -> tuple[str, Path]:
    """NAME=RUNS from the command line."""
    name, sep, path = text.partition("=")
    if not sep or not NAME.fullmatch(name) or not path:
        raise RunsError(f"{text}: give each study as NAME=RUNS_FOLDER (NAME lower-case letters, digits, _ or -), "
                        "e.g. imagenette=docs/study/runs")  # fmt: skip
    return name, Path(path)


def load_study(name: str, runs: Path) -> Study:
    figure1 = figure1_beside(runs)
    if not figure1.is_file():
        return Study(name, load_runs(runs), source=runs)
    png = figure1.with_name(FIGURE1_PLOT)
    return Study(name, load_runs(runs), json.loads(figure1.read_text()), png if png.is_file() else None, source=runs)


def evaluate_studies(studies: list[Study]) -> list[ClaimResult]:
    """Each study's claims, then Holm once over the claims tested in all of them (and over their magnitudes)."""
    for study in studies:
        study.claims = evaluate_claims(study.runs, study.figure1, holm=False)
    family = [result for study in studies for result in study.claims]
    apply_holm(family)
    return family


def _cell(result: ClaimResult | None) -> tuple[str, str]:
    if result is None or result.estimate is None:
        return "-", "-" if result is None else result.direction
    row = claim_row(result)
    decided = result.direction in ("reproduced", "opposite")
    holm = holm_text(result.holm_survives, decided)
    verdict = f"**{result.direction}**" + (f" (Holm: {holm})" if holm != "-" else "")
    if result.claim.paper_gives_number:
        verdict += f"; {result.magnitude}"
    power = "" if row["power_text"] == "-" else f", power {row['power_text']}, 80% at {row['seeds_text']} seeds"
    return f"{row['measured']} ({row['seeds']} seeds{power})", verdict


def side_by_side(studies: list[Study]) -> list[str]:
    """One row per claim, two cells per study: the effect [interval] and the verdicts."""
    header = "| claim | paper | paper's value | " + " | ".join(f"{s.name}: effect [95%] | {s.name}: verdict"
                                                          for s in studies) + " |"  # fmt: skip
    lines = [header, "|---|---|---|" + "---|---|" * len(studies)]
    keys = list(dict.fromkeys(result.claim.key for study in studies for result in study.claims))
    for key in keys:
        found = [next((r for r in study.claims if r.claim.key == key), None) for study in studies]
        claim = next(r for r in found if r is not None).claim
        if all(r is None or r.estimate is None for r in found):
            continue
        cells = [text for result in found for text in _cell(result)]
        name = f"{claim.name} (extra)" if claim.extra else claim.name
        lines.append(f"| {name} | {claim.section} | {claim.paper_value} | " + " | ".join(cells) + " |")
    return lines


def write_studies_report(studies: list[Study], folder: Path) -> Path:
    """DIR/claims.md and claims.json side by side, and each study's own report in DIR/<name>/."""
    if len({study.name for study in studies}) != len(studies):
        raise RunsError("report: two studies share a name; give each NAME=RUNS a different NAME")
    family = evaluate_studies(studies)
    folder.mkdir(parents=True, exist_ok=True)
    tested = [result for result in family if result.tested]
    lines = [
        "# The paper's claims, study by study", "",
        *(f"- **{study.name}**: {study.described}; its report: [{study.name}/ablations.md]({study.name}/ablations.md)"
          for study in studies), "",
        f"Holm runs once over all **{len(tested)} claims tested** in the {len(studies)} studies (family-wise "
        f"{FAMILY_ALPHA:.0%}), and once over their magnitudes; each study's own report uses the same adjusted "
        "p-values.", "",
        *(f"- **{study.name}**: {claims_summary(study.claims, family, untested=False)}" for study in studies), "",
        *side_by_side(studies), "",
        VERDICT_RULE, "",
    ]  # fmt: skip
    markdown = folder / "claims.md"
    markdown.write_text("\n".join(lines))
    summary = {
        "studies": {study.name: [claim_row(result) for result in study.claims] for study in studies},
        "claims_tested": len(tested),
        "holm_family": [f"{study.name}:{r.claim.key}" for study in studies for r in study.claims if r.tested],
        "holm_survivors": sum(bool(result.holm_survives) for result in tested),
    }
    (folder / "claims.json").write_text(json.dumps(summary, indent=2) + "\n")
    for study in studies:
        render_report(study.runs, folder / study.name, study.figure1, claims=study.claims, holm_family=family)
        link_runs(study, folder / study.name)
        if study.figure1_png is not None:
            (folder / study.name / "figure1").mkdir(exist_ok=True)
            shutil.copyfile(study.figure1_png, folder / study.name / "figure1" / FIGURE1_PLOT)
    return markdown


def link_runs(study: Study, report_dir: Path) -> None:
    """DIR/<name>/runs -> the study's runs folder (a relative symlink): its per-run results beside its report."""
    if study.source is None:
        return
    link = report_dir / "runs"
    if link.is_symlink() or link.exists():
        if not link.is_symlink():
            raise RunsError(f"{link}: a folder where the link to {study.source} goes; remove it and re-run")
        link.unlink()
    link.symlink_to(os.path.relpath(study.source.resolve(), report_dir.resolve()), target_is_directory=True)
