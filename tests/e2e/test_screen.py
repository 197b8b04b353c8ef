"""Whole-server tests of screen perception: uvicorn on a free port, a real WebSocket client
sending real JPEGs (drawn with OpenCV), the real pipeline, graph and REST endpoint, with the
fake OpenAI server as both the LLM and the vision model."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.pipelines.test_vision_pipeline import (
    CORRUPT_JPEG,
    describe_by_image,
    encode,
    ui_image,
    ui_jpeg,
    virtual_display,
    vlm_requests,
)
from tests.server_harness import ServerThread, WsClient, open_ws, text_turn

SCREEN = b"\x02"
Factory = Callable[..., ServerThread]


def vision_server(factory: Factory, llm: FakeOpenAI, **over: Any) -> ServerThread:
    """A server whose VLM is the fake too (its own settings, as in production)."""
    settings = {
        "vlm_base_url": llm.base_url,
        "vlm_api_key": "k",
        "vlm_model": "fake-vlm",
        "vlm_min_interval_s": 0.0,
    }
    return factory(llm, **(settings | over))


async def session(srv: ServerThread, user: str) -> tuple[WsClient, dict[str, Any]]:
    ws = await open_ws(srv, persona="emma", token=user)
    created = await ws.wait_for("session.created")
    return ws, created["session"]


def persona_requests(llm: FakeOpenAI) -> list[dict[str, Any]]:
    """The persona's own chat calls (no image, not mem0)."""
    return [r for r in llm.chat_requests(mem0=False) if not r["images"]]


def system_prompt(request: dict[str, Any]) -> str:
    return request["body"]["messages"][0]["content"]


# --------------------------------------------------------------------------- WebSocket


async def test_identical_frames_one_call_and_a_changed_frame_another(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    describe_by_image(llm, "You have an editor open.")
    srv = vision_server(server_factory, llm)
    ws, _ = await session(srv, "alice")
    await ws.send_raw(SCREEN + ui_jpeg(0))
    first = await ws.wait_for("vision.description")
    assert first["text"] == "screen #1" and first["cached"] is False
    assert isinstance(first["t_ms"], int) and first["t_ms"] >= 0
    for q in (85, 85, 70):  # the same screen again, once re-encoded
        await ws.send_raw(SCREEN + ui_jpeg(0, quality=q))
    # a screen question waits until those frames were looked at: unchanged, so no new call
    done = (await text_turn(ws, "What's on my screen?"))[1]
    assert done["status"] == "completed"
    assert len(vlm_requests(llm)) == 1
    assert "screen #1" in system_prompt(persona_requests(llm)[-1])
    await ws.send_raw(SCREEN + ui_jpeg(3))
    second = await ws.wait_for("vision.description")
    assert second["text"] == "screen #2"
    calls = vlm_requests(llm)
    assert len(calls) == 2 and {c["body"]["model"] for c in calls} == {"fake-vlm"}
    assert calls[1]["images"] == ["data:image/jpeg;base64," + base64.b64encode(ui_jpeg(3)).decode()]
    assert ws.of_type("error") == []


async def test_min_interval_limits_vlm_calls(server_factory: Factory, llm: FakeOpenAI) -> None:
    describe_by_image(llm)
    srv = vision_server(server_factory, llm, vlm_min_interval_s=1.0)
    ws, _ = await session(srv, "bob")
    frames = [base64.b64encode(ui_jpeg(i + 1)).decode() for i in range(20)]
    start = time.monotonic()
    sent: list[float] = []
    for i, jpeg_b64 in enumerate(frames):  # a new screen every 100 ms for 2 s (input_image)
        await asyncio.sleep(max(0.0, start + i * 0.1 - time.monotonic()))
        await ws.send(
            {"type": "input_image", "source": "screen", "t_ms": i * 100, "jpeg_b64": jpeg_b64}
        )
        sent.append(time.monotonic())
    last = await ws.wait_for("vision.description", t_ms=1900)  # latest wins in the end
    calls = vlm_requests(llm)
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(calls)]
    assert all(g >= 0.9 for g in gaps), gaps  # 1 s between call starts, less HTTP jitter
    # call k (k >= 2) needs a frame newer than call k-1, which began >= k-2 s after the
    # first: with frames spanning 1.9 s that allows 3 calls (4 only if sending lagged)
    span = sent[-1] - sent[0]
    assert 2 <= len(calls) <= 2 + math.floor(span + 0.05), (len(calls), span)
    described = ws.of_type("vision.description")
    assert len(described) == len(calls) and last is described[-1]


async def test_corrupt_jpeg_gets_an_error_and_the_pipeline_goes_on(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    describe_by_image(llm)
    srv = vision_server(server_factory, llm)
    ws, _ = await session(srv, "carol")
    await ws.send_raw(SCREEN + CORRUPT_JPEG)
    err = await ws.wait_for("error")
    assert err["code"] == "invalid_image" and err["fatal"] is False
    assert "could not decode image" in err["message"]
    await ws.send_raw(SCREEN + b"definitely not an image")
    err2 = await ws.wait_for("error")
    assert err2["code"] == "invalid_image" and "not a JPEG, PNG or WebP" in err2["message"]
    await ws.send({"type": "input_image", "source": "screen", "t_ms": 5, "jpeg_b64": "@@@@"})
    err3 = await ws.wait_for("error")
    assert err3["code"] == "invalid_image" and "base64" in err3["message"]
    await ws.send_raw(SCREEN + ui_jpeg(2))
    desc = await ws.wait_for("vision.description")
    assert desc["text"] == "screen #1"
    await ws.send({"type": "ping"})
    await ws.wait_for("pong")
    assert len(vlm_requests(llm)) == 1


async def test_description_reaches_the_persona_on_the_next_turn(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = vision_server(server_factory, llm)
    ws, _ = await session(srv, "dana")
    llm.queue_reply("A spreadsheet titled Q3 budget with a bar chart.")
    await ws.send_raw(SCREEN + ui_jpeg(4))
    desc = await ws.wait_for("vision.description")
    assert desc["text"] == "A spreadsheet titled Q3 budget with a bar chart."
    llm.queue_reply("Looks like budgeting time!")
    done = (await text_turn(ws, "Hi there"))[1]
    assert done["text"] == "Looks like budgeting time!"
    prompt = system_prompt(persona_requests(llm)[-1])
    assert "What is on the user's screen right now: A spreadsheet titled Q3 budget" in prompt


def look_then_answer(answer: str, vlm: Reply | None = None) -> Callable[[dict[str, Any]], Any]:
    """The fake model as a screen-aware persona: on the user's turn it calls
    get_screen_context, after the tool result it answers; image calls (the VLM) get ``vlm``,
    or 'screen #n' per distinct image."""
    seen: dict[str, str] = {}

    def reply(body: dict[str, Any]) -> Any:
        images = [u for m in body["messages"] for u in _image_urls(m)]
        if images:
            return vlm or seen.setdefault(images[0], f"screen #{len(seen) + 1}")
        if body["messages"][-1]["role"] == "user" and body.get("tools"):
            return Reply(tool_calls=[{"name": "get_screen_context", "arguments": {}}])
        return answer

    return reply


def _image_urls(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]


def tool_result_of(request: dict[str, Any]) -> dict[str, Any]:
    """The (last) tool result the model read in this request."""
    tool = [m for m in request["body"]["messages"] if m["role"] == "tool"][-1]
    return json.loads(tool["content"])


async def test_screen_question_looks_at_a_fresh_description(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    llm.set_default(look_then_answer("I can see it."))
    srv = vision_server(server_factory, llm, vlm_min_interval_s=60.0, vision_wait_s=10.0)
    ws, _ = await session(srv, "erin")
    await ws.send_raw(SCREEN + ui_jpeg(1))
    assert (await ws.wait_for("vision.description"))["text"] == "screen #1"
    # a new screen would wait a minute for the VLM; the model's look describes it now
    await ws.send_raw(SCREEN + ui_jpeg(2))
    done = (await text_turn(ws, "what's on my screen?"))[1]
    assert done["status"] == "completed" and done["text"] == "I can see it."
    vlm = vlm_requests(llm)
    assert len(vlm) == 2
    first, chat = persona_requests(llm)[-2:]
    assert chat["t"] >= vlm[1]["t_done"]  # the answer was generated after the description
    assert tool_result_of(chat) == {"available": True, "screen": "screen #2"}
    call = ws.of_type("response.tool_call")[0]
    assert call["name"] == "get_screen_context" and call["response_id"] == done["response_id"]
    result = ws.of_type("response.tool_result")[0]
    assert result["ok"] is True and result["summary"] == "looked at the screen"
    kinds = [e["type"] for e in ws.events]
    fresh = ws.of_type("vision.description")[1]
    assert fresh["text"] == "screen #2"
    assert ws.events.index(fresh) < kinds.index("response.text.delta")
    # without the question, no look: the tool was offered in the first call, not forced
    assert "get_screen_context" in [t["function"]["name"] for t in first["body"]["tools"]]


async def test_screen_look_wait_is_bounded(server_factory: Factory, llm: FakeOpenAI) -> None:
    slow = Reply("A very slowly described screen.", ttft_ms=3000)
    llm.set_default(look_then_answer("Sorry, I can't see it yet.", vlm=slow))
    srv = vision_server(server_factory, llm, vision_wait_s=0.3)
    ws, _ = await session(srv, "fay")
    await ws.send_raw(SCREEN + ui_jpeg(1))
    done = (await text_turn(ws, "Can you look at my screen?"))[1]
    assert done["text"] == "Sorry, I can't see it yet."
    chat = persona_requests(llm)[-1]
    assert tool_result_of(chat)["available"] is False
    desc = await ws.wait_for("vision.description")  # the description still lands, later
    assert desc["text"] == "A very slowly described screen."
    assert chat["t"] < vlm_requests(llm)[0]["t_done"]  # the reply did not wait for it


async def test_no_screen_is_said_plainly(server_factory: Factory, llm: FakeOpenAI) -> None:
    llm.set_default(look_then_answer("I can't see your screen."))
    srv = vision_server(server_factory, llm)
    ws, _ = await session(srv, "gus")
    done = (await text_turn(ws, "지금 화면에 뭐가 보여?"))[1]
    assert done["text"] == "I can't see your screen."
    result = tool_result_of(persona_requests(llm)[-1])
    assert result["available"] is False and "No screen is available" in result["note"]
    assert ws.of_type("response.tool_result")[0]["summary"] == "no screen to look at"


async def test_cache_serves_the_same_screen_in_another_session_of_the_user(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    describe_by_image(llm)
    srv = vision_server(server_factory, llm)
    ws1, _ = await session(srv, "gail")
    await ws1.send_raw(SCREEN + ui_jpeg(5))
    assert (await ws1.wait_for("vision.description"))["cached"] is False
    ws2, _ = await session(srv, "gail")
    await ws2.send_raw(SCREEN + ui_jpeg(5))
    hit = await ws2.wait_for("vision.description")
    assert hit == {**hit, "text": "screen #1", "cached": True}
    assert len(vlm_requests(llm)) == 1
    # another user's identical screen is not served from gail's cache entry
    ws3, _ = await session(srv, "hank")
    await ws3.send_raw(SCREEN + ui_jpeg(5))
    assert (await ws3.wait_for("vision.description"))["cached"] is False
    assert len(vlm_requests(llm)) == 2
    assert srv.services.vision_cache.hits == 1
    async with httpx.AsyncClient(base_url=srv.url) as http:
        usage = (await http.get("/v1/usage", headers={"Authorization": "Bearer gail"})).json()
    assert usage["usage"]["vlm_calls"] == 1 and usage["usage"]["vlm_cache_hits"] == 1


async def test_without_a_vlm_screen_frames_get_one_error(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, vlm_enabled=False)
    ws, _ = await session(srv, "ivan")
    for _ in range(3):
        await ws.send_raw(SCREEN + ui_jpeg(1))
    jpeg_b64 = base64.b64encode(ui_jpeg(2)).decode()
    await ws.send({"type": "input_image", "source": "screen", "t_ms": 1, "jpeg_b64": jpeg_b64})
    await ws.send({"type": "ping"})
    await ws.wait_for("pong")
    errors = ws.of_type("error")
    assert [e["code"] for e in errors] == ["vision_unavailable"]
    assert errors[0]["fatal"] is False and "VLM_BASE_URL" in errors[0]["message"]
    llm.queue_reply("Hello!")
    assert ((await text_turn(ws, "hello"))[1])["text"] == "Hello!"  # the session carries on
    assert vlm_requests(llm) == []
    async with httpx.AsyncClient(base_url=srv.url) as http:
        health = (await http.get("/health/details")).json()
    assert health["modules"]["vlm"] == "disabled"
    assert "VLM_ENABLED=false" in health["details"]["vlm"]


async def test_desktop_capture_without_display_reports_why(
    server_factory: Factory, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    describe_by_image(llm)
    srv = vision_server(server_factory, llm, screen_capture=True)
    async with httpx.AsyncClient(base_url=srv.url) as http:
        health = await http.get("/health")
        details = (await http.get("/health/details")).json()
    # Configured (SCREEN_CAPTURE=true) but in error: /health says so; the rest still works.
    assert health.status_code == 503 and health.json()["status"] == "error"
    assert details["modules"]["screen_capture"] == "error"
    assert "no display to capture" in details["details"]["screen_capture"]
    assert details["modules"]["vlm"] == "ready"
    ws, _ = await session(srv, "jill")  # browser frames still work
    await ws.send_raw(SCREEN + ui_jpeg(1))
    assert (await ws.wait_for("vision.description"))["text"] == "screen #1"


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with virtual_display(monkeypatch) as display:
        yield display


async def test_desktop_capture_describes_this_machines_screen(
    server_factory: Factory, llm: FakeOpenAI, xvfb: str
) -> None:
    describe_by_image(llm)
    srv = vision_server(server_factory, llm, screen_capture=True, screen_capture_interval_s=0.1)
    async with httpx.AsyncClient(base_url=srv.url) as http:
        details = (await http.get("/health/details")).json()
    assert details["modules"]["screen_capture"] == "ready"
    assert details["details"]["screen_capture"] == "monitor 1: 1280x720"
    ws, _ = await session(srv, "local")  # no frames sent: the server captures by itself
    desc = await ws.wait_for("vision.description")
    assert desc["text"] == "screen #1"
    assert vlm_requests(llm)[0]["images"][0].startswith("data:image/jpeg;base64,")


# --------------------------------------------------------------------------- REST

ANALYSIS = {
    "current_screen": "A code editor with a Run button.",
    "available_actions": [
        {
            "type": "click",
            "element": "Run button",
            "coordinates": {"x": 565, "y": 327},
            "confidence": 0.9,
        }
    ],
    "recommended_action": {"type": "click", "target": "Run button", "reasoning": "Run the code."},
}


async def test_analyze_screen_returns_the_structured_analysis(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = vision_server(server_factory, llm)
    _, sess = await session(srv, "kim")
    llm.queue_reply(json.dumps(ANALYSIS))
    png = base64.b64encode(ui_png()).decode()
    body = {"session_id": sess["id"], "screenshot": png, "context": "I want to run my script"}
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        r = await http.post(
            "/v1/analyze/screen", json=body, headers={"Authorization": "Bearer kim"}
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"analysis": ANALYSIS}
        request = vlm_requests(llm)[-1]["body"]
        assert request["model"] == "fake-vlm"
        assert request["response_format"]["type"] == "json_schema"
        assert "I want to run my script" in json.dumps(request["messages"])
        assert vlm_requests(llm)[-1]["images"][0].startswith("data:image/png;base64,")
        # a data URL is accepted as well; no session_id is needed
        llm.queue_reply(json.dumps(ANALYSIS))
        url = "data:image/jpeg;base64," + base64.b64encode(ui_jpeg(1)).decode()
        r2 = await http.post(
            "/v1/analyze/screen", json={"screenshot": url}, headers={"Authorization": "Bearer kim"}
        )
        assert r2.status_code == 200, r2.text
        usage = (await http.get("/v1/usage", headers={"Authorization": "Bearer kim"})).json()
    assert usage["usage"]["vlm_calls"] == 2


def ui_png() -> bytes:
    return encode(ui_image(2), ".png")


@pytest.mark.parametrize(
    ("screenshot", "status", "detail"),
    [
        ("not base64 at all!", 400, "Invalid image: screenshot is not valid base64."),
        (
            base64.b64encode(b"GIF89a" + b"\0" * 64).decode(),
            400,
            "Invalid image: not a JPEG, PNG or WebP",
        ),
        (base64.b64encode(CORRUPT_JPEG).decode(), 400, "Invalid image: could not decode image"),
        ("A" * 200_000, 413, "Invalid image: the screenshot is larger than 100000 bytes."),
    ],
)
async def test_analyze_screen_rejects_bad_images(
    server_factory: Factory, llm: FakeOpenAI, screenshot: str, status: int, detail: str
) -> None:
    srv = vision_server(server_factory, llm, max_image_bytes=100_000)
    async with httpx.AsyncClient(base_url=srv.url) as http:
        r = await http.post("/v1/analyze/screen", json={"screenshot": screenshot})
    assert r.status_code == status
    assert r.json()["detail"].startswith(detail)
    assert vlm_requests(llm) == []


async def test_analyze_screen_refuses_other_users_sessions_and_reports_failures(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = vision_server(server_factory, llm)
    _, sess = await session(srv, "leo")
    shot = base64.b64encode(ui_jpeg(1)).decode()
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        r = await http.post(
            "/v1/analyze/screen",
            json={"session_id": sess["id"], "screenshot": shot},
            headers={"Authorization": "Bearer mia"},
        )
        assert r.status_code == 404 and r.json()["detail"] == "No such session for this user."
        llm.queue_reply("this is not json")
        r = await http.post(
            "/v1/analyze/screen", json={"screenshot": shot}, headers={"Authorization": "Bearer leo"}
        )
        assert r.status_code == 502
        assert "could not analyse the screen" in r.json()["detail"]
        assert "not valid JSON" in r.json()["detail"]
        r = await http.post("/v1/analyze/screen", json={"context": "x"})
        assert r.status_code == 422


async def test_analyze_screen_without_a_vlm_is_503(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, vlm_enabled=False)
    shot = base64.b64encode(ui_jpeg(1)).decode()
    async with httpx.AsyncClient(base_url=srv.url) as http:
        r = await http.post("/v1/analyze/screen", json={"screenshot": shot})
    assert r.status_code == 503
    assert "no vision model is configured" in r.json()["detail"]
