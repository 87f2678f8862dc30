"""figure1.data: cifar10: a small archive in the official binary layout, read from a path, file:// and http."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from pipeline_copy import BIN, REPO, environment, read_params, stage_command
from test_download import serve  # noqa: F401  (the fixture: files over http on 127.0.0.1, a free port)

from alexnet.config import ConfigError, parse
from alexnet.data import cifar10
from alexnet.data.cifar10 import CifarError, fetch_archive, read
from alexnet.data.download import DownloadError
from alexnet.figure1 import training_set

PER_CLASS = 2  # records of each class in each batch file


def record(label: int, image: np.ndarray) -> bytes:
    """The binary format: the label byte, then the red plane, the green plane, the blue plane, each row-major."""
    return bytes([label]) + b"".join(image[:, :, channel].tobytes() for channel in range(3))


def make_archive(path: Path, member_folder: str = "cifar-10-batches-bin") -> tuple[np.ndarray, np.ndarray]:
    """A tar.gz laid out like cifar-10-binary.tar.gz; returns the train split's (images HWC, labels) in file order."""
    rng = np.random.default_rng(7)
    images, labels = [], []
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{member_folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("batches.meta.txt", b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n")
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            batch = [(label, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for label in range(10)] * PER_CLASS
            add(name, b"".join(record(label, image) for label, image in batch))
            if name != "test_batch.bin":
                labels += [label for label, _ in batch]
                images += [image for _, image in batch]
    return np.stack(images), np.array(labels)


@pytest.fixture
def archive(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    path = tmp_path / "served" / "cifar-10-binary.tar.gz"
    images, labels = make_archive(path)
    return path, images, labels


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reads_the_binary_format_from_a_path_and_a_file_url(archive, tmp_path):
    path, images, labels = archive
    md5 = f"md5:{hashlib.md5(path.read_bytes()).hexdigest()}"
    for url, checksum in ((str(path), sha256(path)), (path.as_uri(), md5)):
        got_images, got_labels = read(fetch_archive(url, checksum, tmp_path / "cache", progress=False))
        assert got_images.shape == (5 * 10 * PER_CLASS, 32, 32, 3) and got_images.dtype == np.uint8
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)
    assert read(path, "test")[0].shape == (10 * PER_CLASS, 32, 32, 3)
    assert not (tmp_path / "cache").exists(), "a local archive is read in place"


def test_an_unpacked_folder_is_read_too(archive, tmp_path):
    path, images, _ = archive
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    np.testing.assert_array_equal(read(fetch_archive(str(tmp_path / "unpacked"), None, tmp_path))[0], images)


def test_http_download_is_verified_and_cached(archive, tmp_path, serve):  # noqa: F811
    path, images, _ = archive
    base, server = serve(path.parent)
    cache = tmp_path / "cache"
    fetched = fetch_archive(f"{base}/{path.name}", sha256(path), cache, progress=False)
    assert fetched == cache / path.name
    np.testing.assert_array_equal(read(fetched)[0], images)
    assert fetch_archive(f"{base}/{path.name}", sha256(path), cache, progress=False) == fetched
    assert len(server.requests) == 1


def test_official_name_is_checked_against_the_published_md5(archive, tmp_path):
    path, _, _ = archive
    with pytest.raises(DownloadError) as error:
        fetch_archive(str(path), None, tmp_path, progress=False)
    message = str(error.value)
    assert f"md5 mismatch: expected {cifar10.MD5}" in message and "figure1.checksum" in message
    assert "\n" not in message and "data." not in message


def test_wrong_checksum_is_one_line_naming_figure1_keys(archive, tmp_path, serve):  # noqa: F811
    path, _, _ = archive
    base, _ = serve(path.parent)
    for url in (str(path), f"{base}/{path.name}"):
        with pytest.raises(DownloadError) as error:
            fetch_archive(url, "0" * 64, tmp_path / "cache", progress=False)
        message = str(error.value)
        assert "sha256 mismatch" in message and "figure1.checksum" in message and "\n" not in message


def test_another_file_needs_a_checksum(archive, tmp_path):
    path, _, _ = archive
    renamed = path.rename(path.with_name("my-cifar.tgz"))
    with pytest.raises(CifarError, match="not the official cifar-10-binary.tar.gz; set figure1.checksum"):
        fetch_archive(str(renamed), None, tmp_path)
    with pytest.raises(DownloadError, match="not found; set figure1.url"):
        fetch_archive(str(tmp_path / "nowhere.tar.gz"), "0" * 64, tmp_path)


def test_default_is_the_official_url_checked_by_its_md5(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(cifar10, "fetch", lambda url, cache, checksum, progress, keys: asked.append((url, checksum)))
    fetch_archive(None, None, tmp_path, progress=False)
    official = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert asked == [(official, "md5:c32a1d4ab5d03f1284b67883e8d87530")]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed when the block ends: connecting is refused


def test_offline_is_one_line_naming_figure1_url_and_the_fix(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-binary.tar.gz"
    with pytest.raises(DownloadError) as error:
        fetch_archive(url, None, tmp_path, progress=False)
    message = str(error.value)
    assert "cannot connect" in message and "\n" not in message
    assert "figure1.url at a local copy" in message and "figure1.data: prepared" in message


def test_pickled_version_truncated_files_and_other_labels_are_clear_errors(tmp_path):
    make_archive(tmp_path / "cifar-10-python.tar.gz", member_folder="cifar-10-batches-py")
    with pytest.raises(CifarError, match="no cifar-10-batches-bin/data_batch_1.bin; this is the pickled"):
        read(tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(CifarError, match="3073-byte records"):
        cifar10.decode(record(3, np.zeros((32, 32, 3), np.uint8))[:-1], "data_batch_1.bin")
    with pytest.raises(CifarError, match="label 42 is not a CIFAR-10 class"):
        cifar10.decode(record(42, np.zeros((32, 32, 3), np.uint8)), "data_batch_1.bin")
    (tmp_path / "broken.tar.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CifarError, match="not a readable tar archive"):
        read(tmp_path / "broken.tar.gz")


def figure1_params(archive: Path, **figure1) -> dict:
    params = read_params()
    params["tracking"]["enabled"] = False
    params["figure1"].update(data="cifar10", url=archive.as_uri(), checksum=sha256(archive), **figure1)
    return params


def test_training_set_is_cifar_centred_and_needs_32x32(archive, tmp_path):
    path, images, labels = archive
    data = training_set(parse(figure1_params(path)), tmp_path / "no-prepared-needed", progress=False)
    assert data.images.shape == images.shape and data.images.dtype == np.float32 and data.num_classes == 10
    np.testing.assert_allclose(data.images.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(data.images * 128.0, images - images.mean(axis=(0, 1, 2)), atol=1e-3)
    np.testing.assert_array_equal(data.labels, labels)
    with pytest.raises(ConfigError, match="figure1.image_size: 16, but CIFAR-10 images are 32x32"):
        training_set(parse(figure1_params(path, image_size=16)), tmp_path, progress=False)


def test_figure1_stage_runs_on_cifar10_without_prepared_data(archive, tmp_path):
    path, _, _ = archive
    params = figure1_params(path, epochs=2, learning_rates=[0.03], seeds=[0, 1], target_error=0.95)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _python, script, *arguments = stage_command("figure1")
    result = subprocess.run([str(BIN / "python"), str(REPO / script), *arguments], cwd=tmp_path, env=environment(),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    expected = "figure1 (cifar10, init glorot): median epochs to 95% training error over 2 seeds: relu 1, tanh 1"
    assert expected in result.stdout
    written = json.loads((tmp_path / "reports/figure1/figure1.json").read_text())
    assert written["data"] == "cifar10" and written["train_images"] == 5 * 10 * PER_CLASS
    assert [entry["seed"] for entry in written["seeds"]] == [0, 1]
    assert (tmp_path / "reports/figure1/figure1.png").stat().st_size > 0
