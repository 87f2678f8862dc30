"""The README's commands around the pipeline: `make run IMAGENETTE=...` and the repro-time benchmark's --help."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
from pipeline_copy import BIN, REPO


@pytest.mark.parametrize("form", ["{path}", "file://{path}", "file://localhost{path}"])
def test_make_run_passes_the_checksum_of_a_local_archive(form, tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    archive = tmp_path / "imagenette.tgz"
    archive.write_bytes(b"a stand-in archive")
    url = form.format(path=archive)
    # -n: print the commands only; VENV points nowhere so nothing could touch the real .venv anyway.
    result = subprocess.run(["make", "-n", "run", f"IMAGENETTE={url}", f"VENV={tmp_path}/venv"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    command = next(line for line in result.stdout.splitlines() if "dvc exp run" in line)
    assert f"-S 'data.url={url}'" in command
    assert f"-S data.sha256={hashlib.sha256(archive.read_bytes()).hexdigest()}" in command


def test_make_run_leaves_an_http_mirror_unchecked_unless_given_its_sha256(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    url = "https://mirror.example/imagenette2-160.tgz"
    result = subprocess.run(["make", "-n", "run", f"IMAGENETTE={url}", f"VENV={tmp_path}/venv",
                             "IMAGENETTE_SHA256=" + "a" * 64], cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    assert f"-S data.sha256={'a' * 64}" in result.stdout


def test_repro_time_help_runs_nothing():
    result_file = REPO / "bench" / "results" / "repro_time.json"
    before = result_file.stat().st_mtime_ns if result_file.exists() else None
    result = subprocess.run([str(BIN / "python"), str(REPO / "bench" / "repro_time.py"), "--help"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0 and "usage:" in result.stdout
    assert "--output" in result.stdout
    assert (result_file.stat().st_mtime_ns if result_file.exists() else None) == before
