"""Download one model file: resumable (HTTP Range onto a ``.part`` file), verified (size and
SHA-256 when known), installed by an atomic rename so a half file is never mistaken for a
model. A dropped connection resumes where it stopped, a few times, before giving up."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from server.models.registry import ModelFile

if TYPE_CHECKING:  # imported when a download runs: `desktopmate models list` needs no HTTP
    import httpx

Progress = Callable[[int, int | None], None]  # (bytes done, total bytes or None)
RESUME_ATTEMPTS = 5


class DownloadError(RuntimeError):
    """The file could not be fetched. ``offline`` when the host could not be reached at all.
    The message is safe to show a user."""

    def __init__(self, message: str, *, offline: bool = False) -> None:
        super().__init__(message)
        self.offline = offline


class CorruptDownload(DownloadError):
    """The bytes arrived but are not the expected file (size or SHA-256 differ)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, spec: ModelFile) -> str | None:
    """Why ``path`` is not ``spec`` (wrong size or hash), or None when it is."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return f"{path.name} is {size:,} bytes, expected {spec.size:,}"
    if spec.sha256 is not None and sha256_of(path) != spec.sha256:
        return f"{path.name} has the wrong SHA-256 (damaged or a different file)"
    return None


def is_task_file(path: Path) -> bool:
    """A MediaPipe .task file is a zip of tflite models; an HTML error page or a partial file
    is not."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith(".tflite") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download_file(
    spec: ModelFile,
    dest: Path,
    *,
    timeout_s: float = 30.0,
    progress: Progress | None = None,
    client: httpx.Client | None = None,
) -> Path:
    """Fetch ``spec.url`` into ``dest`` (resuming ``dest.part`` if present) and verify it."""
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    own = client is None
    http = client or httpx.Client(timeout=timeout_s, follow_redirects=True)
    try:
        total: int | None = spec.size
        for attempt in range(RESUME_ATTEMPTS):
            try:
                total = _fetch(http, spec, part, total, progress)
                break
            except (httpx.TransportError, httpx.StreamError) as exc:
                have = part.stat().st_size if part.exists() else 0
                if attempt + 1 == RESUME_ATTEMPTS or (have == 0 and _unreachable(exc)):
                    raise _transport_error(spec, exc, have) from None
    finally:
        if own:
            http.close()
    problem = verify(part, spec)
    if problem is None and total is not None and part.stat().st_size != total:
        problem = f"{dest.name} is {part.stat().st_size:,} bytes, the server announced {total:,}"
    if problem is not None:
        part.unlink(missing_ok=True)  # resuming a wrong file would only repeat the error
        raise CorruptDownload(f"downloaded {problem}; removed it, try again ({spec.url})")
    os.replace(part, dest)
    return dest


def _fetch(
    http: httpx.Client, spec: ModelFile, part: Path, total: int | None, progress: Progress | None
) -> int | None:
    """One request: append to ``part`` from its current length. Returns the total size."""
    have = part.stat().st_size if part.exists() else 0
    if spec.size is not None and have >= spec.size:
        return total  # complete already (or too long: verify says so)
    headers = {"Range": f"bytes={have}-"} if have else {}
    with http.stream("GET", spec.url, headers=headers) as resp:
        if resp.status_code == 416:  # nothing left past `have`: the part is the whole file
            return have
        if resp.status_code >= 400:
            raise DownloadError(f"{spec.url} answered HTTP {resp.status_code}")
        if resp.status_code == 206:
            mode = "ab"
            total = _total_from_range(resp.headers.get("content-range")) or total
        else:  # 200: the server ignored Range (or we had nothing): start over
            mode, have = "wb", 0
            length = resp.headers.get("content-length")
            total = int(length) if length and length.isdigit() else total
        if progress:
            progress(have, total)
        with part.open(mode) as out:
            for chunk in resp.iter_bytes():  # as received: a drop loses nothing written
                out.write(chunk)
                have += len(chunk)
                if progress:
                    progress(have, total)
    return total


def _total_from_range(value: str | None) -> int | None:
    """``bytes 100-199/1000`` -> 1000."""
    if value and "/" in value:
        tail = value.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else None
    return None


def _unreachable(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def _transport_error(spec: ModelFile, exc: Exception, have: int) -> DownloadError:
    import httpx

    host = httpx.URL(spec.url).host
    if have == 0 and _unreachable(exc):
        return DownloadError(f"cannot reach {host} (offline?)", offline=True)
    kept = f"; {have:,} bytes kept, run the command again to resume" if have else ""
    return DownloadError(f"the download from {host} was interrupted ({type(exc).__name__}){kept}")
