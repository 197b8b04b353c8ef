"""Opening a faster-whisper model: a name (downloaded on first use) or a local model
directory, and the failure said in words with its fix. Apart from stt.py, which decodes
with the model, because where a model comes from and why it would not load is a concern of
its own (setup, offline installs, ``desktopmate models``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from server.providers.stt_types import STTUnavailable


def _looks_like_path(model: str) -> bool:
    """True for filesystem paths; False for model names ("base") and hub ids ("org/name")."""
    if model.startswith(("/", "./", "../", "~", ".\\", "..\\")) or os.path.isabs(model):
        return True
    return model.count("/") > 1 or "\\" in model


def _load_failure(model: str, is_dir: bool, exc: Exception) -> str:
    """What went wrong loading ``model``, and the fix, in words (never the raw exception:
    hub and DNS errors are pages of text that tell a user nothing)."""
    fix = (
        "Fix: run `desktopmate models download stt` (online) or `desktopmate models import "
        "PATH` with an offline copy, or set STT_MODEL to a local faster-whisper model folder"
    )
    if is_dir:
        why = "its files are damaged, incomplete or not a CTranslate2 Whisper model"
    elif any(w in type(exc).__name__ for w in ("Connect", "Timeout", "Offline", "NotFound")):
        why = "it is not downloaded yet and the model hub cannot be reached (offline?)"
    else:
        why = "it is not downloaded yet and the download failed"
    return f"cannot load Whisper model {model!r}: {why}. {fix}"


def open_whisper(
    model: str,
    device: str,
    compute_type: str,
    cpu_threads: int,
    download_root: Path | None,
    local_files_only: bool,
) -> Any:
    """The loaded ``WhisperModel`` (blocking; seconds, or minutes for a first download);
    ``STTUnavailable`` with the fix when it cannot load."""
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise STTUnavailable("faster-whisper is not installed") from exc
    source = model
    local = Path(source).expanduser()
    if local.is_dir():
        source = str(local)
    elif _looks_like_path(source):
        raise STTUnavailable(
            f"Whisper model directory not found: {source}. Fix: set STT_MODEL to a "
            "faster-whisper model folder, or to a name and run "
            "`desktopmate models download stt` / `desktopmate models import PATH`"
        )
    elif download_root is not None:
        download_root.mkdir(parents=True, exist_ok=True)
    try:
        return WhisperModel(
            source,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=1,
            download_root=str(download_root) if download_root else None,
            local_files_only=local_files_only,
        )
    except Exception as exc:  # hub, CTranslate2 and OS errors all mean "unavailable"
        raise STTUnavailable(_load_failure(model, local.is_dir(), exc)) from exc
