"""What the running server says and does about its models: offline and corrupt models are
reported with the model, the reason and the fix (never a raw exception); a missing model is
downloaded from the configured mirror with progress, then the module is ready."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import make_settings
from tests.models.conftest import face_task_file
from tests.models.file_server import FileServer, Served
from tests.server_harness import ServerThread, open_ws, running_server

RAW = ("ConnectError", "Traceback", "Errno", "httpx", "huggingface_hub", "LocalEntryNotFound")


async def settled(srv: ServerThread, *modules: str, timeout: float = 60) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=srv.url) as http:
        deadline = time.monotonic() + timeout
        while True:
            details = (await http.get("/health/details")).json()
            if all(details["modules"][m] != "loading" for m in modules):
                return details
            assert time.monotonic() < deadline, details
            await asyncio.sleep(0.05)


async def test_offline_models_say_which_why_and_how_to_fix(tmp_path: Path) -> None:
    s = make_settings(
        tmp_path,
        None,
        stt_model="base",
        face_enabled=True,
        models_mirror_url="http://127.0.0.1:9/models",  # nothing listens: as offline
    )
    with running_server(s) as srv:
        details = await settled(srv, "stt", "face")
    assert details["modules"]["stt"] == "error" and details["modules"]["face"] == "error"
    stt, face = details["details"]["stt"], details["details"]["face"]
    assert stt.startswith("Whisper speech-to-text 'base' model unavailable")
    assert "offline" in stt and "`desktopmate models download stt`" in stt
    assert "`desktopmate models import PATH`" in stt and "STT_MODEL" in stt
    assert face.startswith("MediaPipe face landmarker model unavailable")
    assert "offline" in face and "`desktopmate models download face`" in face
    for text in (stt, face):
        assert not any(raw in text for raw in RAW), text
    assert details["progress"] == {}


async def test_auto_download_off_names_the_setting(tmp_path: Path) -> None:
    s = make_settings(tmp_path, None, stt_model="base", models_auto_download=False)
    with running_server(s) as srv:
        details = await settled(srv, "stt")
    msg = details["details"]["stt"]
    assert "not installed (MODELS_AUTO_DOWNLOAD=false)" in msg
    assert str(s.models_root) in msg and "desktopmate models download stt" in msg


async def test_a_corrupt_installed_model_is_reported_as_such(tmp_path: Path) -> None:
    s = make_settings(tmp_path, None, face_enabled=True, models_auto_download=False)
    bad = s.models_root / "face" / "face_landmarker.task"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"<html>captive portal</html>")
    with running_server(s) as srv:
        details = await settled(srv, "face")
    msg = details["details"]["face"]
    assert details["modules"]["face"] == "error"
    assert "corrupt" in msg and str(bad) in msg and "desktopmate models download face" in msg


async def test_a_missing_model_downloads_with_progress_then_is_ready(tmp_path: Path) -> None:
    body = face_task_file().read_bytes()
    half = len(body) // 2
    with FileServer() as files:
        # slowed down so progress is observable; the first connection drops half-way
        files.files["/m/face/face_landmarker.task"] = Served(
            body, cut_after=[half], chunk_delay_s=0.01
        )
        s = make_settings(tmp_path, None, face_enabled=True, models_mirror_url=files.url + "/m")
        with running_server(s) as srv:
            progress: list[dict[str, Any]] = []
            async with httpx.AsyncClient(base_url=srv.url) as http:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    details = (await http.get("/health/details")).json()
                    if details["progress"].get("face"):
                        progress.append(details["progress"]["face"])
                    if details["modules"]["face"] != "loading":
                        break
                    await asyncio.sleep(0.05)
    assert details["modules"]["face"] == "ready", details
    assert details["progress"] == {}
    installed = s.models_root / "face" / "face_landmarker.task"
    assert installed.read_bytes() == body
    assert [r for _, r in files.requests] == [None, f"bytes={half}-"]
    assert len(progress) >= 3, progress
    assert {p["file"] for p in progress} == {"face_landmarker.task"}
    assert all(p["total"] == len(body) for p in progress)
    done = [p["done"] for p in progress]
    assert done == sorted(done) and any(0 < d < len(body) for d in done)


async def test_sessions_get_server_status_events_while_a_model_downloads(
    tmp_path: Path,
) -> None:
    body = face_task_file().read_bytes()
    with FileServer() as files:
        files.files["/m/face/face_landmarker.task"] = Served(body, chunk_delay_s=0.02)
        s = make_settings(tmp_path, None, face_enabled=True, models_mirror_url=files.url + "/m")
        with running_server(s) as srv:
            ws = await open_ws(srv, persona="emma")
            await ws.wait_for("session.created")
            statuses: list[dict[str, Any]] = []
            while not statuses or statuses[-1]["modules"]["face"] == "loading":
                statuses.append(await ws.wait_for("server.status", timeout=60))
            await ws.conn.close()
    assert statuses[0]["modules"]["face"] == "loading"
    assert "downloading the MediaPipe face landmarker model" in statuses[0]["details"]["face"]
    progress = [e["progress"]["face"] for e in statuses if "face" in e["progress"]]
    assert len(progress) >= 2, statuses
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
    assert statuses[-1]["modules"]["face"] == "ready" and statuses[-1]["progress"] == {}
    assert "face" not in statuses[-1]["details"]
