"""GET /health over real misconfigurations: a configured module in error makes it 503;
modules that are not configured (disabled) or run on a fallback (degraded) do not."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread


async def health_when_settled(srv: ServerThread, module: str) -> tuple[int, dict[str, Any]]:
    """GET /health once ``module`` has left `loading` (models load in the background)."""
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        for _ in range(600):
            r = await http.get("/health")
            if r.json()["modules"].get(module) != "loading":
                details = (await http.get("/health/details")).json()
                return r.status_code, r.json() | {"details": details["details"]}
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{module} still loading")


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_modules_that_are_not_configured_do_not_fail_health(
    server_factory: Callable[..., ServerThread],
):
    srv = server_factory(None, memory_enabled=False)  # no LLM, no STT, no face model
    status, body = await health_when_settled(srv, "stt")
    assert status == 200 and body["status"] == "ok"
    for m in ("llm", "vlm", "stt", "face", "memory"):
        assert body["modules"][m] == "disabled", m
    assert "STT_ENABLED=false" in body["details"]["stt"]


async def test_the_server_runs_on_the_event_loop_event_loop_names(
    server_factory: Callable[..., ServerThread],
):
    """EVENT_LOOP=auto serves on uvloop where it is installed (this host); asyncio on ask."""
    for wanted, loop in (("auto", "uvloop"), ("asyncio", "asyncio")):
        srv = server_factory(None, memory_enabled=False, event_loop=wanted)
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
            assert (await http.get("/health/details")).json()["event_loop"] == loop, wanted


async def test_an_stt_model_that_fails_to_load_makes_health_503(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, tmp_path: Path
):
    srv = server_factory(llm, stt_model=str(tmp_path / "whisper-that-is-not-there"))
    status, body = await health_when_settled(srv, "stt")
    assert status == 503 and body["status"] == "error"
    assert body["modules"]["stt"] == "error"
    assert "missing" in body["details"]["stt"] and "STT_MODEL" in body["details"]["stt"]
    assert body["modules"]["agent"] == "ready" and body["modules"]["store"] == "ready"


async def test_fish_tts_without_its_url_makes_health_503(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    srv = server_factory(llm, tts_provider="fish")
    status, body = await health_when_settled(srv, "tts")
    assert status == 503 and body["modules"]["tts"] == "error"
    assert "FISH_SPEECH_URL" in body["details"]["tts"]


async def test_a_missing_face_model_file_makes_health_503(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, tmp_path: Path
):
    srv = server_factory(llm, face_model_path=tmp_path / "no-face.task")
    status, body = await health_when_settled(srv, "face")
    assert status == 503 and body["modules"]["face"] == "error"


async def test_tts_on_its_fallback_is_degraded_and_healthy(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    """Fish Speech is down (nothing listens on its port): replies use the offline voice."""
    srv = server_factory(llm, tts_provider="fish", fish_speech_url=closed_port_url())
    async with httpx.AsyncClient(base_url=srv.url, timeout=60) as http:
        r = await http.post("/v1/tts", json={"text": "hello there", "format": "wav"})
        assert r.status_code == 200, r.text
    status, body = await health_when_settled(srv, "tts")
    assert body["modules"]["tts"] == "degraded"
    assert status == 200 and body["status"] == "ok"
