"""Every stage script, given an input a user can get wrong, ends in one line on stderr and exit status 2."""

from __future__ import annotations

import json
import socket
import subprocess

import numpy as np
import pytest
import yaml
from pipeline_copy import BIN, REPO, environment, read_params, stage_command


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: connecting is refused


def fake_prepared(project):
    """Just what load_prepared reads, so a stage gets past its data to the input under test."""
    prepared = project / "data" / "prepared"
    prepared.mkdir(parents=True)
    np.save(prepared / "mean_image.npy", np.zeros((40, 40, 3), np.float32))
    stats = {"rgb_eigenvalues": [1, 1, 1], "rgb_eigenvectors": np.eye(3).tolist(),
             "counts": {"train": 3, "val": 3}, "manifest_sha256": "0" * 64, "jpeg_quality": 90}  # fmt: skip
    (prepared / "stats.json").write_text(json.dumps(stats))
    (prepared / "classes.json").write_text(json.dumps([{"wnid": f"c{i}", "name": f"c{i}"} for i in range(3)]))


def offline(params, project):
    params["data"].update(source="imagenette", url=f"http://127.0.0.1:{closed_port()}/imagenette2-160.tgz",
                          sha256=None, cache_dir=str(project / "cache"))  # fmt: skip


def cifar10_offline(params, project):
    params["figure1"].update(data="cifar10", url=f"http://127.0.0.1:{closed_port()}/cifar-10-binary.tar.gz")
    params["data"]["cache_dir"] = str(project / "cache")


def missing_ilsvrc(params, project):
    params["data"].update(source="ilsvrc2012", url=str(project / "no-such-ILSVRC2012"), sha256=None)


def wrong_checksum(params, project):
    archive = project / "imagenette.tgz"
    archive.write_bytes(b"not the archive you were looking for")
    params["data"].update(source="imagenette", url=str(archive), sha256="0" * 64)


def not_an_archive(params, project):
    (project / "photos.tgz").write_text("a text file named like an archive\n")
    params["data"].update(source="folder", url=str(project / "photos.tgz"), sha256=None)


CASES = {
    # id: (stage [variant seed], edit of params and project, what the last stderr line must say)
    "ingest-offline": (("ingest",), offline, ["cannot connect", "data.url", "make run IMAGENETTE=<path>",
                                               "make run-synthetic"]),
    "ingest-missing-ilsvrc": (("ingest",), missing_ilsvrc, ["no-such-ILSVRC2012: not found", "data.url"]),
    "ingest-wrong-sha256": (("ingest",), wrong_checksum, ["sha256 mismatch", "data.sha256"]),
    "ingest-not-an-archive": (("ingest",), not_an_archive, ["photos.tgz: not a readable tar archive"]),
    "preprocess-no-raw": (("preprocess",), None, ["manifest.csv", "dvc repro ingest"]),
    "train-no-prepared": (("train", "baseline", 0), None, ["stats.json", "dvc repro preprocess"]),
    "train-unknown-variant": (("train", "no_such_variant", 0), None, ["unknown variant 'no_such_variant'"]),
    "evaluate-no-model": (("evaluate", "baseline", 0), lambda p, d: fake_prepared(d),
                          ["models/baseline-s0", "dvc repro train@baseline-0"]),
    "figure1-no-prepared": (("figure1",), None, ["stats.json", "dvc repro preprocess"]),
    "figure1-cifar10-offline": (("figure1",), cifar10_offline, ["cannot connect", "figure1.url",
                                                                 "figure1.data: prepared"]),
    "compare-no-runs": (("compare",), None, ["no such folder of runs", "run train and evaluate first"]),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_stage_user_error_is_one_line_and_exit_2(case, tmp_path):
    stage, edit, expected = CASES[case]
    _python, script, *arguments = stage_command(*stage)
    params = read_params()
    params["tracking"]["enabled"] = False
    if edit:
        edit(params, tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run(
        [str(BIN / "python"), str(REPO / script), *arguments],
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr[-2000:]
    for fragment in expected:
        assert fragment in last, last


def test_malformed_params_is_one_line_in_a_matrix_stage(tmp_path):
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    _python, script, *arguments = stage_command("evaluate", "baseline", 0)
    result = subprocess.run(
        [str(BIN / "python"), str(REPO / script), *arguments],
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "params.yaml: not valid YAML" in last and "fix the syntax" in last, last
