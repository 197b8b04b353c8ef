"""Model downloads against a real loopback HTTP server: Range resume after a dropped
connection and across runs, servers that ignore Range, corrupt bytes, offline hosts."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.models.download import (
    CorruptDownload,
    DownloadError,
    download_file,
    part_path,
)
from server.models.registry import ModelFile
from tests.models.file_server import FileServer, Served

BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def files() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


def spec(srv: FileServer, path: str = "/m.bin", **over: object) -> ModelFile:
    return ModelFile("m.bin", srv.url + path, **({"size": len(BODY), "sha256": SHA} | over))  # type: ignore[arg-type]


def test_downloads_and_verifies_with_progress(files: FileServer, tmp_path: Path) -> None:
    files.files["/m.bin"] = Served(BODY)
    seen: list[tuple[int, int | None]] = []
    dest = download_file(spec(files), tmp_path / "m.bin", progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == BODY
    assert not part_path(dest).exists()
    assert seen[0] == (0, len(BODY)) and seen[-1] == (len(BODY), len(BODY))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert files.requests == [("/m.bin", None)]


def test_a_dropped_connection_resumes_with_range(files: FileServer, tmp_path: Path) -> None:
    files.files["/m.bin"] = Served(BODY, cut_after=[100_000, 50_000])
    dest = download_file(spec(files), tmp_path / "m.bin")
    assert dest.read_bytes() == BODY
    ranges = [r for _, r in files.requests]
    assert ranges[0] is None
    # each retry asks for exactly what is missing
    starts = [int(r[6:-1]) for r in ranges[1:]]  # type: ignore[index]
    assert starts == [100_000, 150_000]


def test_an_interrupted_run_resumes_on_the_next(files: FileServer, tmp_path: Path) -> None:
    """The process died mid-download: the .part stays, and the next run asks for the rest."""
    dest = tmp_path / "m.bin"
    part_path(dest).write_bytes(BODY[:123_456])
    files.files["/m.bin"] = Served(BODY)
    download_file(spec(files), dest)
    assert dest.read_bytes() == BODY
    assert files.requests == [("/m.bin", "bytes=123456-")]


def test_a_server_without_range_support_restarts_cleanly(files: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "m.bin"
    part_path(dest).write_bytes(BODY[:1000])
    files.files["/m.bin"] = Served(BODY, ranges=False)
    download_file(spec(files), dest)
    assert dest.read_bytes() == BODY  # not the first 1000 bytes twice


def test_a_complete_part_is_installed_after_a_416(files: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "m.bin"
    part_path(dest).write_bytes(BODY)
    files.files["/m.bin"] = Served(BODY)
    download_file(spec(files, size=None), dest)
    assert dest.read_bytes() == BODY
    assert files.requests == [("/m.bin", f"bytes={len(BODY)}-")]


def test_corrupt_bytes_are_detected_and_removed(files: FileServer, tmp_path: Path) -> None:
    bad = bytearray(BODY)
    bad[1000] ^= 0xFF
    files.files["/m.bin"] = Served(bytes(bad))
    dest = tmp_path / "m.bin"
    with pytest.raises(CorruptDownload, match="wrong SHA-256"):
        download_file(spec(files), dest)
    assert not dest.exists() and not part_path(dest).exists()


def test_a_short_file_is_corrupt_not_installed(files: FileServer, tmp_path: Path) -> None:
    files.files["/m.bin"] = Served(BODY[:-10])
    with pytest.raises(CorruptDownload, match="expected 300,000"):
        download_file(spec(files), tmp_path / "m.bin")
    assert list(tmp_path.iterdir()) == []


def test_repeated_drops_give_up_keeping_the_part(files: FileServer, tmp_path: Path) -> None:
    files.files["/m.bin"] = Served(BODY, cut_after=[1000] * 5)  # every try drops
    with pytest.raises(DownloadError, match="interrupted") as info:
        download_file(spec(files, size=None, sha256=None), tmp_path / "m.bin")
    assert not info.value.offline
    assert "resume" in str(info.value)
    assert part_path(tmp_path / "m.bin").stat().st_size == 5000  # kept for the next run


def test_http_errors_and_offline_hosts_are_clear(files: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(spec(files, "/missing"), tmp_path / "m.bin")
    assert not info.value.offline
    dead = ModelFile("m.bin", "http://127.0.0.1:9/m.bin", len(BODY), SHA)
    with pytest.raises(DownloadError, match=r"cannot reach 127\.0\.0\.1 \(offline\?\)") as info:
        download_file(dead, tmp_path / "m.bin")
    assert info.value.offline
    assert list(tmp_path.iterdir()) == []
