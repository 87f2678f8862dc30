"""Only alexnet.tracking imports mlflow (DESIGN.md): the library runs, and is tested, with tracking off.

Two guards: this scan of every module outside tracking/ (tests aside: they read the store to check it), and
ruff's banned-api rule (TID251), which `make lint` and CI run; the second test checks that rule is in force.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRACKING = REPO / "src" / "alexnet" / "tracking"
SKIPPED = {".venv", ".git", "tests", "data", "models", "reports", "node_modules"}


def project_modules() -> list[Path]:
    return sorted(
        path for path in REPO.rglob("*.py")
        if not SKIPPED & set(path.relative_to(REPO).parts[:-1]) and TRACKING not in path.parents
    )  # fmt: skip


def mlflow_imports(source: str) -> list[int]:
    """Lines that import mlflow: `import mlflow...`, `from mlflow... import`, `importlib.import_module("mlflow")`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            names = [str(node.args[0].value)] if called in ("import_module", "__import__") else []
        else:
            continue
        if any(name == "mlflow" or name.startswith("mlflow.") for name in names):
            lines.append(node.lineno)
    return lines


def test_no_module_outside_tracking_imports_mlflow():
    modules = project_modules()
    assert REPO / "pipeline" / "train.py" in modules and REPO / "src" / "alexnet" / "training.py" in modules
    assert not any(TRACKING in path.parents for path in modules)
    offenders = [f"{path.relative_to(REPO)}:{line}" for path in modules for line in mlflow_imports(path.read_text())]
    assert not offenders, f"import mlflow only in src/alexnet/tracking/: {offenders}"


@pytest.mark.parametrize(
    "source",
    ["import mlflow", "import mlflow.keras as k", "from mlflow.data import meta_dataset",
     "def f():\n    from mlflow import MlflowClient", "import importlib\nimportlib.import_module('mlflow.models')"],
)  # fmt: skip
def test_the_scan_sees_every_way_of_importing_mlflow(source):
    assert mlflow_imports(source), source
    assert not mlflow_imports(source.replace("mlflow", "mlflowish").replace("mlflowish.", "x."))


def test_tracking_itself_imports_mlflow():
    assert any(mlflow_imports(path.read_text()) for path in TRACKING.glob("*.py"))


RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (pip install -e '.[dev]')")
@pytest.mark.parametrize(
    ("where", "banned"),
    [("src/alexnet/training.py", True), ("pipeline/train.py", True), ("src/alexnet/tracking/run.py", False)],
)
def test_ruff_bans_mlflow_outside_tracking(where, banned):
    result = subprocess.run(
        [RUFF, "check", "--no-cache", "--stdin-filename", where, "-"], input="import mlflow\n\nmlflow.x = 1\n",
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ("TID251" in result.stdout) == banned, result.stdout + result.stderr
    assert (result.returncode != 0) == banned
