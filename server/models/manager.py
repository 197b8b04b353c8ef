"""What is installed, where, and what to do about what is not: used by the CLI
(`desktopmate models ...`) and by the server when a module loads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from server.config import Settings
from server.models.download import DownloadError, Progress, download_file, is_task_file, verify
from server.models.registry import (
    FACE_FILE,
    KINDS,
    VAD_FILE,
    WHISPER_FILES,
    ModelSpec,
    search_roots,
    spec_for,
)


@dataclass(frozen=True)
class ModelState:
    """One model as found on disk. ``problem`` says why it is unusable (None when it is
    present); ``fix`` is the exact command or setting that repairs it."""

    kind: str
    title: str
    path: Path  # where it was found, or where it would be installed
    present: bool
    problem: str | None = None
    fix: str = ""
    source: str = ""  # models folder, beside the binary, setting, bundled, legacy cache

    def message(self) -> str:
        """One line for the log, /health/details and the studio."""
        if self.present:
            return f"{self.title}: {self.path}"
        return f"{self.title} model unavailable: {self.problem}. Fix: {self.fix}"


def fix_for(kind: str, setting: str = "") -> str:
    alt = f", or set {setting} to a local copy" if setting else ""
    return (
        f"run `desktopmate models download {kind}` (online) or "
        f"`desktopmate models import PATH` with an offline copy{alt}"
    )


def _looks_like_path(value: str) -> bool:
    """Filesystem paths, as opposed to model names ("base") and hub ids ("org/name")."""
    if value.startswith(("/", "./", "../", "~", ".\\", "..\\")) or os.path.isabs(value):
        return True
    return value.count("/") > 1 or "\\" in value


def _folder_problem(spec: ModelSpec, folder: Path) -> str | None:
    """Why the files in ``folder`` are not ``spec`` (sizes only: hashes are for downloads and
    imports, too slow to repeat on every start)."""
    for f in spec.files:
        path = folder / f.name
        if not path.is_file():
            return f"{path} is missing"
        if f.size is not None and path.stat().st_size != f.size:
            return f"{path} is {path.stat().st_size:,} bytes, expected {f.size:,} (corrupt)"
    if spec.kind == "face" and not is_task_file(folder / FACE_FILE):
        return f"{folder / FACE_FILE} is not a MediaPipe .task file (corrupt)"
    return None


def _legacy_whisper(settings: Settings, name: str) -> Path | None:
    """A model the Hugging Face hub client downloaded before MODELS_DIR existed."""
    cache = settings.models_root / "whisper" / f"models--Systran--faster-whisper-{name}"
    for model in sorted(cache.glob("snapshots/*/model.bin")):
        if all((model.parent / f).exists() for f in WHISPER_FILES):
            return model.parent
    return None


def locate(settings: Settings, kind: str) -> ModelState:
    spec = spec_for(settings, kind)
    explicit = _explicit(settings, kind)
    if explicit is not None:
        folder = explicit if kind == "stt" else explicit.parent
        problem = _folder_problem(_named_like(spec, explicit), folder)
        if problem is None:
            return ModelState(kind, spec.title, explicit, True, source=spec.setting)
        return ModelState(
            kind,
            spec.title,
            explicit,
            False,
            f"{spec.setting}={explicit}, but {problem}",
            f"fix {spec.setting}, or unset it and "
            f"run `desktopmate models download {kind}` / `desktopmate models import PATH`",
            spec.setting,
        )
    first_problem: str | None = None
    for i, root in enumerate(search_roots(settings)):
        folder = spec.folder(root)
        problem = _folder_problem(spec, folder)
        where = "models folder" if i == 0 else "beside the binary"
        if problem is None:
            path = folder if kind == "stt" else folder / spec.files[0].name
            return ModelState(kind, spec.title, path, True, source=where)
        if first_problem is None and folder.exists():
            first_problem = problem
    if kind == "stt" and (legacy := _legacy_whisper(settings, settings.stt_model)):
        return ModelState(kind, spec.title, legacy, True, source="legacy cache")
    if kind == "vad" and (bundled := _bundled_vad()) is not None:
        return ModelState(kind, spec.title, bundled, True, source="bundled")
    target = spec.folder(settings.models_root)
    path = target if kind == "stt" else target / spec.files[0].name
    why = first_problem or f"not installed (looked in {_roots_text(settings)})"
    return ModelState(kind, spec.title, path, False, why, fix_for(kind, spec.setting))


def _roots_text(settings: Settings) -> str:
    return ", ".join(str(r) for r in search_roots(settings))


def _explicit(settings: Settings, kind: str) -> Path | None:
    if kind == "stt" and _looks_like_path(settings.stt_model):
        return Path(settings.stt_model).expanduser()
    if kind == "stt":
        local = Path(settings.stt_model).expanduser()
        return local if local.is_dir() else None
    if kind == "face" and settings.face_model_path is not None:
        return settings.face_model_path.expanduser()
    return None


def _named_like(spec: ModelSpec, explicit: Path) -> ModelSpec:
    """An explicit copy is checked for presence only: it may be any version."""
    from dataclasses import replace

    from server.models.registry import ModelFile

    if spec.kind == "stt":
        files = tuple(ModelFile(f.name, f.url) for f in spec.files)
    else:
        files = (ModelFile(explicit.name, spec.files[0].url),)
    return replace(spec, files=files)


def _bundled_vad() -> Path | None:
    """The Silero model faster-whisper ships (also inside the one-file binary)."""
    from server.providers.vad import faster_whisper_assets

    assets = faster_whisper_assets()
    path = assets / VAD_FILE if assets is not None else None
    return path if path is not None and path.is_file() else None


def list_states(settings: Settings) -> list[ModelState]:
    return [locate(settings, kind) for kind in KINDS]


def install(
    settings: Settings,
    kind: str,
    progress: Progress | None = None,
    on_file: object = None,
) -> Path:
    """Download ``kind`` into the models folder (skipping files already there and intact).
    Raises DownloadError (with ``offline`` set when no host could be reached)."""
    spec = spec_for(settings, kind)
    folder = spec.folder(settings.models_root)
    for f in spec.files:
        dest = folder / f.name
        if dest.is_file() and verify(dest, f) is None:
            continue
        if callable(on_file):
            on_file(f)
        download_file(f, dest, timeout_s=settings.models_download_timeout_s, progress=progress)
    if kind == "face" and not is_task_file(folder / FACE_FILE):
        (folder / FACE_FILE).unlink(missing_ok=True)
        raise DownloadError(f"{spec.files[0].url} did not return a MediaPipe .task model file")
    return folder if kind == "stt" else folder / spec.files[0].name


__all__ = [
    "FACE_FILE",
    "VAD_FILE",
    "DownloadError",
    "ModelState",
    "install",
    "is_task_file",
    "list_states",
    "locate",
]
