"""`desktopmate models import PATH`: install an offline copy of the models from a folder or
an archive (.zip, .tar.gz, .tgz, .tar).

Models are recognised by their files wherever they sit in the tree: a folder holding
model.bin + config.json + tokenizer.json + vocabulary.txt is a Whisper model (named ``base``
when it is byte-for-byte the pinned base, else after its folder, ``faster-whisper-``
removed), ``silero_vad_v6.onnx`` is the VAD, ``face_landmarker.task`` the face model. Each
known file is checked (size and SHA-256) before it is installed; nothing half-copied is
ever left under its final name."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from server.config import Settings
from server.models.download import is_task_file, verify
from server.models.registry import (
    FACE_FILE,
    VAD_FILE,
    WHISPER_FILES,
    ModelFile,
    ModelSpec,
    face_spec,
    vad_spec,
    whisper_spec,
)

ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar")


class ImportProblem(ValueError):
    """The path holds no usable model, or a model file is damaged. Safe to show a user."""


@dataclass(frozen=True)
class Imported:
    kind: str
    title: str
    path: Path


def import_models(settings: Settings, source: Path) -> list[Imported]:
    source = source.expanduser()
    if not source.exists():
        raise ImportProblem(f"{source} does not exist")
    root = settings.models_root
    root.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        return _import_tree(settings, source)
    if not source.name.lower().endswith(ARCHIVES):
        raise ImportProblem(f"{source} is neither a folder nor an archive ({', '.join(ARCHIVES)})")
    with tempfile.TemporaryDirectory(prefix=".import-", dir=root) as tmp:
        _extract(source, Path(tmp))
        return _import_tree(settings, Path(tmp))


def _extract(archive: Path, dest: Path) -> None:
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():  # refuse paths that escape the folder
                    target = (dest / member).resolve()
                    if not target.is_relative_to(dest.resolve()):
                        raise ImportProblem(f"{archive} has an unsafe path: {member}")
                z.extractall(dest)
        else:
            with tarfile.open(archive) as t:
                t.extractall(dest, filter="data")  # refuses links and paths outside dest
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise ImportProblem(f"cannot read the archive {archive}: {type(e).__name__}") from None


def _import_tree(settings: Settings, tree: Path) -> list[Imported]:
    found: list[Imported] = []
    for folder, _dirs, files in os.walk(tree):
        here = Path(folder)
        names = set(files)
        if set(WHISPER_FILES) <= names:
            spec = _whisper_spec_for(settings, here)
            found.append(_install(spec, here, settings.models_root))
        if VAD_FILE in names:
            found.append(_install(vad_spec(settings), here, settings.models_root))
        if FACE_FILE in names:
            if not is_task_file(here / FACE_FILE):
                raise ImportProblem(f"{here / FACE_FILE} is not a MediaPipe .task file (corrupt)")
            found.append(_install(face_spec(settings), here, settings.models_root))
    if not found:
        raise ImportProblem(
            f"no model found in {tree}: expected a Whisper folder ({', '.join(WHISPER_FILES)}), "
            f"{VAD_FILE} or {FACE_FILE}"
        )
    return found


def _whisper_spec_for(settings: Settings, folder: Path) -> ModelSpec:
    base = whisper_spec(settings, "base")
    model_bin = next(f for f in base.files if f.name == "model.bin")
    name = folder.name.removeprefix("faster-whisper-")
    if name == "base" or (folder / "model.bin").stat().st_size == model_bin.size:
        return base
    if not name or name.startswith("."):
        name = settings.stt_model
    return whisper_spec(settings, name)


def _install(spec: ModelSpec, source_dir: Path, root: Path) -> Imported:
    dest_dir = spec.folder(root)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for f in spec.files:
        src = source_dir / f.name
        problem = verify(src, f)
        if problem is not None:
            raise ImportProblem(f"{spec.title}: {problem}; not imported")
        _copy_atomically(src, dest_dir / f.name, f)
    path = dest_dir if spec.kind == "stt" else dest_dir / spec.files[0].name
    return Imported(spec.kind, spec.title, path)


def _copy_atomically(src: Path, dest: Path, spec: ModelFile) -> None:
    if spec.sha256 is not None and dest.is_file() and verify(dest, spec) is None:
        return  # this exact file is installed already
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out, 8 << 20)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
