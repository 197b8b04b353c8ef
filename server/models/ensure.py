"""Make a model available to the running server: find it, else download it (with progress on
the status board), else say exactly what is wrong and how to fix it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from server.config import Settings
from server.logging import get_logger
from server.models.download import DownloadError
from server.models.manager import install, locate
from server.models.registry import ModelFile, spec_for
from server.status import StatusBoard

log = get_logger(__name__)

Report = Callable[[str, str], None]  # (status, detail)


async def ensure_model(
    settings: Settings, kind: str, module: str, board: StatusBoard, report: Report
) -> Path | None:
    """The model's path, or None after reporting ``error`` with a message that names the
    model, the reason (missing, offline, corrupt) and the fix."""
    state = locate(settings, kind)
    if state.present:
        return state.path
    explicit = state.source != ""  # a setting points at a copy that is not there
    if explicit or not settings.models_auto_download:
        message = state.message()
        if not explicit:
            message = _with_reason(message, "MODELS_AUTO_DOWNLOAD=false")
        _fail(report, module, kind, message)
        return None
    title = spec_for(settings, kind).title
    current: list[ModelFile] = []

    def on_file(f: ModelFile) -> None:
        current[:] = [f]

    def progress(done: int, total: int | None) -> None:
        board.set_progress(module, current[0].name if current else "", done, total)

    report("loading", f"downloading the {title} model into {settings.models_root}")
    try:
        path = await asyncio.to_thread(install, settings, kind, progress, on_file)
    except DownloadError as e:
        _fail(
            report,
            module,
            kind,
            f"{title} model unavailable: not installed and the download failed ({e}). "
            f"Fix: {state.fix}",
        )
        return None
    finally:
        board.clear_progress(module)
    log.info("model_downloaded", model=kind, path=str(path))
    return path


def _with_reason(message: str, reason: str) -> str:
    return message.replace("not installed", f"not installed ({reason})", 1)


def _fail(report: Report, module: str, kind: str, message: str) -> None:
    report("error", message)
    log.warning("model_unavailable", module=module, model=kind, message=message)
