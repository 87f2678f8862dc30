"""fetch(): http with Range resume, cache, sha256 checks, file:// and plain paths, clear errors."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
from pipeline_copy import read_params

from alexnet.config import parse
from alexnet.data.download import DownloadError, fetch
from alexnet.data.ingest import ingest

ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = ROOT.parent / "shared/data/imagenette2-224.tgz"
SHARED_SHA256 = "fac1387a34ce02cf7938dcc2801cd5d904542f2453b3037fdb70a502fbc47c01"


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (SimpleHTTPRequestHandler has none)."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        self.server.requests.append(self.headers.get("Range"))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start = 0
        requested = self.headers.get("Range")
        if requested and not self.server.ignore_range:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        with open(path, "rb") as stream:
            stream.seek(start)
            shutil.copyfileobj(stream, self.wfile)


@pytest.fixture
def serve():
    servers = []

    def start(folder: Path, ignore_range: bool = False):
        handler = functools.partial(RangeHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.requests, server.ignore_range = [], ignore_range
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes, str]:
    folder = tmp_path / "served"
    folder.mkdir()
    data = os.urandom(300_000)
    (folder / "archive.tgz").write_bytes(data)
    return folder, data, hashlib.sha256(data).hexdigest()


def test_http_download_is_verified_and_cached(tmp_path, serve, payload):
    folder, data, sha256 = payload
    base, server = serve(folder)
    cache = tmp_path / "cache"
    path = fetch(f"{base}/archive.tgz", cache, sha256, progress=False)
    assert path == cache / "archive.tgz" and path.read_bytes() == data
    assert fetch(f"{base}/archive.tgz", cache, sha256, progress=False) == path
    assert len(server.requests) == 1
    assert not (cache / "archive.tgz.part").exists()


def test_download_resumes_from_part_file(tmp_path, serve, payload):
    folder, data, sha256 = payload
    base, server = serve(folder)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "archive.tgz.part").write_bytes(data[:100_000])
    path = fetch(f"{base}/archive.tgz", cache, sha256, progress=False)
    assert server.requests == ["bytes=100000-"]
    assert path.read_bytes() == data


def test_server_without_range_support_restarts_cleanly(tmp_path, serve, payload):
    folder, data, sha256 = payload
    base, _ = serve(folder, ignore_range=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "archive.tgz.part").write_bytes(b"stale" * 1000)
    assert fetch(f"{base}/archive.tgz", cache, sha256, progress=False).read_bytes() == data


def test_complete_part_file_is_finished_without_downloading(tmp_path, serve, payload):
    folder, data, sha256 = payload
    base, _ = serve(folder)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "archive.tgz.part").write_bytes(data)
    assert fetch(f"{base}/archive.tgz", cache, sha256, progress=False).read_bytes() == data


def test_wrong_sha256_is_refused_with_the_fix(tmp_path, serve, payload):
    folder, _, sha256 = payload
    base, _ = serve(folder)
    wrong = "0" * 64
    with pytest.raises(DownloadError) as error:
        fetch(f"{base}/archive.tgz", tmp_path / "cache", wrong, progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert "archive.tgz" in message and wrong in message and sha256 in message and "data.sha256" in message


def test_local_path_and_file_url(payload):
    folder, _, sha256 = payload
    archive = folder / "archive.tgz"
    assert fetch(str(archive), folder / "unused", sha256) == archive
    assert fetch(archive.as_uri(), folder / "unused", sha256) == archive
    assert fetch(str(folder), folder / "unused", None) == folder
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(str(archive), folder / "unused", "1" * 64)
    assert archive.exists(), "a user's file is never deleted"
    assert not (folder / "unused").exists()


def test_missing_local_file_names_data_url(tmp_path):
    with pytest.raises(DownloadError, match="data.url"):
        fetch(str(tmp_path / "nope.tgz"), tmp_path, None)


def test_unsupported_scheme_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="unsupported scheme 'ftp'"):
        fetch("ftp://example.com/archive.tgz", tmp_path, None)


def test_connection_refused_names_data_url(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError) as error:
        fetch(f"http://127.0.0.1:{port}/archive.tgz", tmp_path, None, progress=False)
    assert "data.url" in str(error.value) and "\n" not in str(error.value)


def test_http_404_is_reported(tmp_path, serve, payload):
    base, _ = serve(payload[0])
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{base}/missing.tgz", tmp_path / "cache", None, progress=False)


@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="../shared/data/imagenette2-224.tgz is absent")
def test_real_imagenette_download_and_ingest(tmp_path, serve):
    base, _ = serve(SHARED_ARCHIVE.parent)
    url = f"{base}/{SHARED_ARCHIVE.name}"
    cache = tmp_path / "cache"
    archive = fetch(url, cache, SHARED_SHA256, progress=False)
    assert archive.stat().st_size == SHARED_ARCHIVE.stat().st_size
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(url, cache, "f" * 64, progress=False)

    raw = read_params()
    raw["data"].update(
        source="folder", url=str(archive), classes=2, train_per_class=5, val_per_class=5, cache_dir=str(cache)
    )
    summary = ingest(parse(raw).data, tmp_path / "raw", tmp_path / "work", progress=False)
    assert (summary.kept_train, summary.kept_val) == (10, 5 * 2 - summary.dropped_from_val)
    with open(tmp_path / "raw/manifest.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    kept = [row for row in rows if row["status"] == "kept"]
    assert all((tmp_path / "raw" / row["path"]).is_file() and row["width"] == "224" for row in kept)
    classes = json.loads((tmp_path / "raw/classes.json").read_text())
    names = {"tench", "English springer", "cassette player", "chain saw", "church", "French horn"}
    names |= {"garbage truck", "gas pump", "golf ball", "parachute"}
    assert len(classes) == 2 and all(entry["name"] in names for entry in classes)
