"""The one-file binary that `packaging/build.py` builds (CI builds it before the tests): started
as the desktop app would, `--sidecar --port 0`, it prints its ready line, answers /health,
completes a text turn against the fake LLM with espeak-ng audio, and loads the real STT and
face models from MODELS_DIR; with Xvfb installed, desktop mode reports it can act on a
virtual display (pynput's dynamically chosen backend was bundled); a `models` folder beside
it is found too.

Outside CI a missing binary skips (building takes minutes); in CI (CI set) it fails."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from server.models.importer import import_models
from tests.e2e.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.models.conftest import face_task_file
from tests.pipelines.test_vision_pipeline import virtual_display
from tests.server_harness import WsClient, text_turn
from tests.sidecar.launch import ROOT, Launched, clean_env

BINARY = Path(
    os.environ.get("DESKTOPMATE_BINARY")
    or ROOT / "dist" / ("desktopmate.exe" if sys.platform == "win32" else "desktopmate")
)


@pytest.fixture(scope="module")
def binary() -> Path:
    if not BINARY.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the binary {BINARY} is missing in CI: .ci/run builds it first")
        pytest.skip(f"{BINARY} is not built: run `uv run python packaging/build.py`")
    return BINARY


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """A virtual X display when Xvfb is installed (desktop mode is then checked too)."""
    if shutil.which("Xvfb") is None:
        yield None
        return
    with virtual_display(monkeypatch) as name:
        yield name


async def test_the_binary_serves_a_turn_as_a_sidecar(
    binary: Path,
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    offline_copy: Path,
    display: str | None,
) -> None:
    models = tmp_path / "models"
    import_models(make_settings(tmp_path, None, models_dir=models), offline_copy)
    desktop = {"TASK_DESKTOP_EXECUTE": "true", "DISPLAY": display} if display else {}
    env = clean_env(
        tmp_path,
        **desktop,
        LLM_BASE_URL=fake_openai.base_url,
        LLM_API_KEY="test-key",
        LLM_MODEL="fake-model",
        MODELS_DIR=str(models),
        STT_ENABLED="true",
        STT_MODEL="base",
        FACE_ENABLED="true",
        TTS_PROVIDER="espeak",
        DEFAULT_OUTPUT_AUDIO="pcm16",
    )
    srv = Launched([str(binary), "serve", "--sidecar", "--port", "0"], env, tmp_path)
    try:
        ready = srv.wait_ready(timeout_s=300)
        print(f"\nbinary time to ready: {srv.ready_after_s:.1f} s")
        auth = {"Authorization": f"Bearer {ready['token']}"}
        async with httpx.AsyncClient(base_url=ready["url"], headers=auth, timeout=30) as http:
            assert (await http.get("/health")).status_code == 200
            assert (await http.get("/health", headers={"Authorization": ""})).status_code == 401
            docs = await http.get("/static-offline-docs/swagger-ui-bundle.js")
            assert docs.status_code == 200 and len(docs.content) > 100_000
            assert "DesktopMate" in (await http.get("/")).text  # the studio page
            personas = (await http.get("/v1/personas")).json()["personas"]
            assert {"emma", "이서아"} <= {p["id"] for p in personas}
            ws_url = ready["url"].replace("http", "ws", 1)
            ws = WsClient(await connect(f"{ws_url}/v1/ws?persona=emma&token={ready['token']}"))
            await ws.wait_for("session.created")
            fake_openai.queue_reply(tokens=["Hello ", "from ", "the ", "binary."])
            deltas, done = await text_turn(ws, "Hi there")
            assert "".join(deltas) == "Hello from the binary."
            assert done["status"] == "completed"
            if not any(e["type"] == "response.audio.done" for e in ws.events):
                await ws.wait_for("response.audio.done", timeout=30)
            assert sum(len(b) for b in ws.binary) > 10_000  # espeak-ng speech, bundled data
            await ws.conn.close()
            deadline = time.monotonic() + 180
            waits_for = ("stt", "face", "desktop") if display else ("stt", "face")
            while True:
                details = (await http.get("/health/details")).json()
                if "loading" not in [details["modules"][m] for m in waits_for]:
                    break
                assert time.monotonic() < deadline, details
                await asyncio.sleep(0.2)
        assert details["modules"]["stt"] == "ready", details  # ctranslate2, frozen
        assert details["modules"]["face"] == "ready", details  # mediapipe, frozen
        if display:  # pynput's X11 backend and python-xlib were bundled (packaging/*.spec)
            assert details["modules"]["desktop"] == "ready", details
            assert details["details"]["desktop"].startswith("pynput xorg"), details
    finally:
        srv.close()


def test_models_beside_the_binary_are_found(binary: Path, tmp_path: Path) -> None:
    here = tmp_path / "app"
    (here / "models" / "face").mkdir(parents=True)
    copy = here / binary.name
    try:
        copy.hardlink_to(binary)
    except OSError:
        pytest.skip("cannot hard-link the binary here (another file system)")
    (here / "models" / "face" / "face_landmarker.task").hardlink_to(face_task_file())
    out = subprocess.run(
        [str(copy), "models", "list"],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    face = here / "models" / "face" / "face_landmarker.task"
    assert f"face  present  {face}  (beside the binary)" in out, out
    assert "stt   MISSING" in out
