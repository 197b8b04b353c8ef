"""The model files this server knows: what each module needs, where it comes from, how big
it is and its SHA-256, and where on disk each provider looks for it.

Layout under the models folder (``MODELS_DIR``, default ``DATA_DIR/models``)::

    stt/<name>/{model.bin, config.json, tokenizer.json, vocabulary.txt}
    vad/silero_vad_v6.onnx
    face/face_landmarker.task

A ``models`` folder beside the one-file binary is searched too (read-only, for installers
that ship the weights next to the executable)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from server.config import Settings

# Revision-pinned sources: the hashes below are of exactly these bytes.
_WHISPER_REVISIONS = {"base": "ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66"}
_WHISPER_BASE = {
    "model.bin": (145_217_532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
    "config.json": (2_309, "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
    "tokenizer.json": (
        2_203_239,
        "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    ),
    "vocabulary.txt": (
        459_861,
        "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    ),
}
WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
VAD_FILE = "silero_vad_v6.onnx"
VAD_URL = "https://github.com/SYSTRAN/faster-whisper/raw/v1.2.1/faster_whisper/assets/" + VAD_FILE
VAD_SIZE_SHA = (1_245_151, "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2")
FACE_FILE = "face_landmarker.task"
FACE_SIZE_SHA = (3_758_596, "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff")

KINDS = ("stt", "vad", "face")


@dataclass(frozen=True)
class ModelFile:
    name: str
    url: str
    size: int | None = None  # None: unknown, the server's Content-Length is checked instead
    sha256: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One installable model: ``kind`` is the module it serves, ``subdir`` its folder under
    the models folder, ``setting`` the setting that points at a copy elsewhere."""

    kind: str
    title: str
    subdir: str
    files: tuple[ModelFile, ...]
    setting: str

    def folder(self, root: Path) -> Path:
        return root / self.subdir


def _mirror(settings: Settings, spec_dir: str, name: str, default: str) -> str:
    base = settings.models_mirror_url
    return f"{base.rstrip('/')}/{spec_dir}/{name}" if base else default


def whisper_spec(settings: Settings, name: str | None = None) -> ModelSpec:
    """faster-whisper model ``name`` (default ``STT_MODEL``) from Systran's Hub repository;
    sizes and hashes are known for ``base``, other names are checked by length only."""
    name = name or settings.stt_model
    revision = _WHISPER_REVISIONS.get(name, "main")
    repo = f"https://huggingface.co/Systran/faster-whisper-{name}/resolve/{revision}"
    known = _WHISPER_BASE if name == "base" else {}
    subdir = f"stt/{name}"
    files = tuple(
        ModelFile(
            f,
            _mirror(settings, subdir, f, f"{repo}/{f}"),
            *known.get(f, (None, None)),
        )
        for f in WHISPER_FILES
    )
    return ModelSpec("stt", f"Whisper speech-to-text '{name}'", subdir, files, "STT_MODEL")


def vad_spec(settings: Settings) -> ModelSpec:
    url = _mirror(settings, "vad", VAD_FILE, VAD_URL)
    return ModelSpec(
        "vad", "Silero voice activity", "vad", (ModelFile(VAD_FILE, url, *VAD_SIZE_SHA),), ""
    )


def face_spec(settings: Settings) -> ModelSpec:
    """The pinned float16/1 file by default; another FACE_MODEL_URL is checked by length and
    by being a .task archive only."""
    source = settings.face_model_url
    pinned = source == Settings.model_fields["face_model_url"].default
    url = _mirror(settings, "face", FACE_FILE, source)
    files = (ModelFile(FACE_FILE, url, *(FACE_SIZE_SHA if pinned else (None, None))),)
    return ModelSpec("face", "MediaPipe face landmarker", "face", files, "FACE_MODEL_PATH")


def spec_for(settings: Settings, kind: str) -> ModelSpec:
    if kind == "stt":
        return whisper_spec(settings)
    if kind == "vad":
        return vad_spec(settings)
    if kind == "face":
        return face_spec(settings)
    raise ValueError(f"unknown model {kind!r}: expected one of {', '.join(KINDS)}")


def beside_binary() -> Path | None:
    """``models/`` next to the one-file executable (frozen builds only)."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().parent / "models"
    return None


def search_roots(settings: Settings) -> list[Path]:
    """Where installed models are looked for, first match wins: the models folder, then the
    folder beside the binary."""
    roots = [settings.models_root]
    extra = beside_binary()
    if extra is not None:
        roots.append(extra)
    return roots
