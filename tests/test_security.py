"""No one let in: what test_archives/test_download/test_evaluation do not already cover.

- URL schemes beyond ftp (the only one test_download tries), and file:// naming another host;
- zip members that are devices or fifos (test_archives covers zip symlinks and tar specials);
- a resumable checkpoint carrying code (a Lambda layer) is refused, not run, by training's resume;
- nothing in the library or stage scripts unpickles, evals or extracts unchecked;
- the MLflow UI listens on loopback unless told otherwise.
"""

from __future__ import annotations

import ast
import stat
import zipfile
from pathlib import Path

import keras
import pytest
from pipeline_copy import read_params

from alexnet.data.archives import ArchiveError, extract
from alexnet.data.download import DownloadError, fetch, local_path

ROOT = Path(__file__).resolve().parents[1]
PICKLERS = ("pickle", "cPickle", "dill", "joblib", "shelve", "marshal", "cloudpickle")
SOURCES = sorted([*(ROOT / "src" / "alexnet").rglob("*.py"), *(ROOT / "pipeline").glob("*.py")])


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/archive.tgz",
        "gs://bucket/archive.tgz",
        "sftp://host/archive.tgz",
        "data:application/x-tar;base64,AAAA",
        "javascript:alert(1)",
        "HTTP+unix://%2Frun%2Fsock/archive.tgz",
    ],
)
def test_only_http_https_and_file_schemes_are_fetched(tmp_path, url):
    with pytest.raises(DownloadError, match="unsupported scheme") as error:
        fetch(url, tmp_path / "cache", None, progress=False)
    assert "data.url takes http(s)://, file:// or a path" in str(error.value)
    assert not (tmp_path / "cache").exists(), "nothing is created for a refused URL"


def test_file_url_naming_another_host_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="file:// takes a local path"):
        local_path("file://evil.example.com/share/archive.tgz")
    assert local_path("file://localhost/tmp/a.tgz") == Path("/tmp/a.tgz")


@pytest.mark.parametrize(
    ("mode", "why"),
    [(stat.S_IFCHR, "device"), (stat.S_IFBLK, "device"), (stat.S_IFIFO, "fifo"), (stat.S_IFSOCK, "special")],
)
def test_zip_device_and_fifo_members_are_refused(tmp_path, mode, why):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:
        zip_file.writestr("ok.txt", b"x")
        info = zipfile.ZipInfo("special")
        info.external_attr = (mode | 0o666) << 16
        zip_file.writestr(info, b"")
    with pytest.raises(ArchiveError, match=why):
        extract(archive, tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["evil.zip"], "nothing extracted, no staging left"


def test_resume_refuses_a_checkpoint_that_carries_code(tmp_path):
    """models/*/checkpoints persists between runs (and travels through DVC remotes): a Lambda there is refused."""
    from alexnet.checkpoint import TrainingRun
    from alexnet.config import TrackingConfig, parse
    from alexnet.run_identity import CHECKPOINT_FILE
    from alexnet.tracking import Tracker
    from alexnet.training import train

    cfg = parse(read_params())
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    marker = str(tmp_path / "pwned")
    touch = lambda x: (__import__("pathlib").Path(marker).touch(), x)[1]  # noqa: E731  (what an attacker ships)
    hostile = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(touch)])
    hostile.save(checkpoints / CHECKPOINT_FILE)
    Path(marker).unlink()  # building the model traced the Lambda once, here, by the attacker
    run = TrainingRun(tmp_path / "model.keras", tmp_path / "history.csv", checkpoints, "f")
    state = {"epochs_done": 1, "schedule": {}, "history": [], "mlflow_run_id": None, "fingerprint": "f"}
    tracker = Tracker(TrackingConfig(**{**cfg.tracking.model_dump(), "enabled": False}))
    with pytest.raises(ValueError, match="(?i)lambda|safe_mode"):
        train(cfg, None, run, tracker, state, verbose=0)
    assert not Path(marker).exists() and not run.model_file.exists(), "the Lambda never ran"


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            owner = function.value.id if isinstance(function, ast.Attribute) and isinstance(
                function.value, ast.Name
            ) else ""  # fmt: skip
            yield node, owner, name


def test_no_pickle_eval_or_unchecked_extraction_in_the_code():
    """Data never reaches a code-running loader: no pickle, np.load only with allow_pickle=False, safe YAML."""
    assert SOURCES, "sources found"
    problems = []
    for path in SOURCES:
        text = path.read_text()
        where = path.relative_to(ROOT)
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                if any(name.split(".")[0] in PICKLERS for name in names):
                    problems.append(f"{where}:{node.lineno}: imports a pickle-family module")
        for node, owner, name in _calls(tree):
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            if owner == "np" and name == "load":
                flag = keywords.get("allow_pickle")
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where}:{node.lineno}: np.load without allow_pickle=False")
            if owner == "yaml" and name in ("load", "unsafe_load", "full_load", "load_all"):
                problems.append(f"{where}:{node.lineno}: yaml.{name} (use yaml.safe_load)")
            if owner == "" and name in ("eval", "exec"):
                problems.append(f"{where}:{node.lineno}: {name}()")
            if name in ("extractall",):
                problems.append(f"{where}:{node.lineno}: extractall (members must be checked one by one)")
            if name == "load_model" and owner in ("saving", "keras", "models"):
                flag = keywords.get("safe_mode")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where}:{node.lineno}: load_model without safe_mode=True")
        if "allow_pickle=True" in text or "safe_mode=False" in text:
            problems.append(f"{where}: allow_pickle=True or safe_mode=False")
    assert not problems, "\n".join(problems)


def test_mlflow_ui_listens_on_loopback_by_default(monkeypatch):
    from alexnet.cli import build_parser
    from alexnet.tracking.ui import ui_command

    command = ui_command()
    assert command[command.index("--host") + 1] == "127.0.0.1"
    args = build_parser().parse_args(["ui"])
    assert args.host == "127.0.0.1"
    assert "0.0.0.0" not in "".join(path.read_text() for path in SOURCES)
