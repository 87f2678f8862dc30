"""dvc.yaml's deps are honest: every project module a stage script imports is a dep, and nothing else is.

The import closure is computed from the code (every `import alexnet...`, at module level or inside a function,
followed through src/alexnet), so a new import, or a new module such as a run layout, shows up here.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pipeline_copy import dvc, git, project_copy

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "src/alexnet"

# Imports a stage never runs: cli.py's `alexnet predict` / `alexnet ui` subcommands (stage scripts call only
# cli.stage_main). Without this every stage would list predict.py and its closure.
NEVER_RUN_BY_STAGES = {("src/alexnet/cli.py", "alexnet.predict"), ("src/alexnet/cli.py", "alexnet.tracking.ui")}


def module_file(root: Path, module: str) -> str | None:
    base = root / "src" / Path(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate.relative_to(root).as_posix()
    return None


def _imports(root: Path, path: str) -> set[str]:
    """Files of the alexnet modules `path` imports: `from alexnet.data import sources` names the submodule too."""
    names = set()
    for node in ast.walk(ast.parse((root / path).read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    files = set()
    never_run = tuple(module for importer, module in NEVER_RUN_BY_STAGES if importer == path)
    for name in names:
        if name.split(".")[0] != "alexnet" or name.startswith(never_run):
            continue
        parts = name.split(".")
        files |= {file for i in range(1, len(parts) + 1) if (file := module_file(root, ".".join(parts[:i])))}
    return files


def holds_code(root: Path, path: str) -> bool:
    """False for a package __init__.py of only a docstring and constants (alexnet/__init__.py: __version__)."""
    for node in ast.parse((root / path).read_text()).body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        constant = isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant | ast.List | ast.Tuple)
        if not (docstring or constant):
            return True
    return False


def import_closure(root: Path, script: str) -> set[str]:
    """Every src/alexnet file `script` imports, directly or not; __init__.py files without code left out."""
    seen, todo = set(), [script]
    while todo:
        for file in _imports(root, todo.pop()) - seen:
            seen.add(file)
            todo.append(file)
    return {file for file in seen if not file.endswith("__init__.py") or holds_code(root, file)}


def stage_scripts(root: Path) -> dict[str, tuple[str, list[str]]]:
    """stage name -> (its pipeline script, its deps as written in dvc.yaml)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    scripts = {}
    for name, stage in stages.items():
        script = re.search(r"python\s+(pipeline/\S+\.py)", stage["cmd"])
        assert script, f"dvc.yaml: stage {name}'s cmd runs no pipeline/ script: {stage['cmd']}"
        scripts[name] = (script.group(1), [dep if isinstance(dep, str) else next(iter(dep)) for dep in stage["deps"]])
    return scripts


def declared_modules(root: Path, deps: list[str]) -> set[str]:
    """The src/alexnet .py files a deps list covers: a file itself, a folder every .py file under it."""
    files = set()
    for dep in deps:
        if dep == PACKAGE or dep.startswith(PACKAGE + "/"):
            path = root / dep
            assert path.exists(), f"dvc.yaml: dep {dep} does not exist"
            found = [path] if path.is_file() else sorted(path.rglob("*.py"))
            files |= {file.relative_to(root).as_posix() for file in found}
    return files


STAGES = stage_scripts(REPO)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_its_scripts_import_closure(stage):
    script, deps = STAGES[stage]
    assert script in deps, f"dvc.yaml: stage {stage} does not list its own script {script}"
    closure = import_closure(REPO, script)
    declared = declared_modules(REPO, deps)
    folder_inits = {file for file in declared if file.endswith("__init__.py") and not holds_code(REPO, file)}
    missing, extra = sorted(closure - declared), sorted(declared - closure - folder_inits)
    assert not missing and not extra, f"dvc.yaml stage {stage}: add deps {missing}; remove deps {extra}"


def test_closure_follows_function_level_and_submodule_imports():
    ingest = import_closure(REPO, "pipeline/ingest.py")
    assert {"src/alexnet/config.py", "src/alexnet/data/sources.py", "src/alexnet/data/synthetic.py"} <= ingest
    assert "src/alexnet/data/input.py" in import_closure(REPO, "src/alexnet/evaluation.py")  # imported in a function
    assert "src/alexnet/model/__init__.py" in import_closure(REPO, "pipeline/train.py")  # re-exports: holds code
    assert "src/alexnet/data/__init__.py" not in ingest and "src/alexnet/__init__.py" not in ingest
    assert "src/alexnet/predict.py" not in ingest


def test_compare_depends_on_every_runs_run_json():
    _, deps = STAGES["compare"]
    train_outs = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["outs"]
    run_json = [out for out in train_outs if isinstance(out, str) and out.endswith("/run.json")]
    assert run_json and any(run_json[0].startswith(dep + "/") for dep in deps), (run_json, deps)


def _placeholder_outputs(root: Path) -> None:
    """An empty stand-in for every stage output, so `dvc commit` can record the pipeline as up to date."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        outs = [out.fs_path for stage in repo.index.stages for out in stage.outs]
    for out in map(Path, outs):
        if out.suffix:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("placeholder\n")
        else:
            out.mkdir(parents=True, exist_ok=True)
            (out / "placeholder").write_text("placeholder\n")


def _changed_stages(root: Path, module: str) -> set[str]:
    """Stages `dvc status` reports with `module` modified among their changed deps (matrix names collapsed)."""
    status = json.loads(dvc(root, "status", "--json").strip().splitlines()[-1])
    changed = set()
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, dict) and entry.get("changed deps", {}).get(module) == "modified":
                changed.add(stage.split("@")[0])
    return changed


def _stale_stages(root: Path) -> set[str]:
    """Every stage `dvc status` reports as not up to date, for any reason (matrix names collapsed)."""
    return {stage.split("@")[0] for stage in json.loads(dvc(root, "status", "--json").strip().splitlines()[-1])}


@contextlib.contextmanager
def edited(root: Path, module: str) -> Iterator[None]:
    """`module` with a line appended for the block, then restored (DVC compares contents, so it is clean again)."""
    path = root / module
    original = path.read_text()
    path.write_text(original + "\n# edited\n")
    try:
        yield
    finally:
        path.write_text(original)


@pytest.fixture(scope="module")
def recorded_project(tmp_path_factory):
    """A project copy whose whole pipeline DVC records as up to date (placeholder outputs, no training)."""
    root = project_copy(tmp_path_factory.mktemp("deps") / "project")
    _placeholder_outputs(root)
    dvc(root, "commit", "--force")
    assert _stale_stages(root) == set()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "pipeline recorded")
    return root


def test_dvc_status_marks_every_stage_importing_a_changed_module(recorded_project):
    root = recorded_project
    for module in ("src/alexnet/config.py", "src/alexnet/data/decode.py"):
        with edited(root, module):
            importers = {stage for stage, (script, _) in STAGES.items() if module in import_closure(root, script)}
            assert importers, module
            assert _changed_stages(root, module) == importers, module
    assert importers == {"ingest"}  # decode.py: ingest alone checks images with Pillow
    assert _stale_stages(root) == set()


def test_editing_the_ui_charts_reruns_compare_alone_never_train_or_evaluate(recorded_project):
    """The MLflow UI's chart JSON is compare's dep only: a new chart does not retrain the study's models."""
    root = recorded_project
    with edited(root, "src/alexnet/study_view.py"):
        assert _stale_stages(root) == {"compare"}
    with edited(root, "src/alexnet/tracking/ui.py"):  # `alexnet ui`: no stage runs it
        assert _stale_stages(root) == set()
    with edited(root, "src/alexnet/tracking/run.py"):  # the run's logging: train and evaluate (and compare)
        assert {"train", "evaluate"} <= _stale_stages(root)
