"""REST contracts over a real server."""

from __future__ import annotations

import gc

import httpx

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws


async def test_health_shape(server: ServerThread):
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert set(body["modules"]) >= {"agent", "llm", "vlm", "tts", "stt", "store", "memory"}
    assert all(
        v in {"ready", "loading", "error", "disabled", "degraded"} for v in body["modules"].values()
    )
    assert body["modules"]["agent"] == "ready" and body["modules"]["store"] == "ready"


async def test_start_up_heap_is_frozen_out_of_the_collector(server: ServerThread):
    """Full collections skip what start-up loaded (a 160 ms pause under load without)."""
    assert server.services.agent is not None
    assert gc.get_freeze_count() > 10_000  # libraries, graph, models: ~220 000 objects


async def test_health_is_503_when_a_required_module_is_down(server: ServerThread):
    server.services.set_status("store", "error", "disk gone")
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/health")
        details = (await http.get("/health/details")).json()
    assert r.status_code == 503 and r.json()["status"] == "error"
    assert details["details"]["store"] == "disk gone"


async def test_chat_new_thread_then_same_thread(server: ServerThread, llm: FakeOpenAI):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        llm.queue_reply("반가워요!")
        r = await http.post("/v1/chat", json={"user_id": "kim", "message": "안녕하세요"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["text_response"] == "반가워요!" and body["thread_id"]
        assert set(body) == {"thread_id", "text_response", "audio_response_b64"}
        llm.queue_reply("기억해요.")
        r2 = await http.post(
            "/v1/chat",
            json={"user_id": "kim", "thread_id": body["thread_id"], "message": "기억나요?"},
        )
        assert r2.json()["thread_id"] == body["thread_id"]
        contents = [m["content"] for m in llm.chat_requests(mem0=False)[-1]["body"]["messages"]]
        assert "안녕하세요" in contents and "반가워요!" in contents
        # another user cannot continue kim's thread
        r3 = await http.post(
            "/v1/chat", json={"user_id": "lee", "thread_id": body["thread_id"], "message": "hi"}
        )
        assert r3.status_code == 404


async def test_chat_errors(server_factory, llm: FakeOpenAI):
    server = server_factory(llm)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await http.post("/v1/chat", json={"message": "no user"})).status_code == 422
        assert (await http.post("/v1/chat", content=b"{bad")).status_code == 422
        long = await http.post("/v1/chat", json={"user_id": "u1", "message": "x" * 4001})
        assert long.status_code == 413 and "MAX_INPUT_CHARS" in long.json()["detail"]
        llm.queue_reply(fail_status=500)
        llm.queue_reply(fail_status=500)
        llm.queue_reply(fail_status=500)
        r = await http.post("/v1/chat", json={"user_id": "u1", "message": "hi"})
        assert r.status_code == 500
        assert r.json()["detail"].startswith("Error processing request: ")
    unconfigured = server_factory(None)
    async with httpx.AsyncClient(base_url=unconfigured.url) as http:
        r = await http.post("/v1/chat", json={"user_id": "u1", "message": "hi"})
        assert r.status_code == 500 and "LLM_BASE_URL" in r.json()["detail"]


async def test_personas(server: ServerThread):
    async with httpx.AsyncClient(base_url=server.url) as http:
        body = (await http.get("/v1/personas")).json()
        listed = body["personas"]
        ids = {p["id"] for p in listed}
        assert {"이서아", "emma", "haru"} <= ids
        assert body["default"] == server.services.settings.default_persona == "이서아"
        assert {p["language"] for p in listed} >= {"ko", "en"}
        seoa = (await http.get("/v1/personas/이서아")).json()
        assert seoa["mbti"] == "ENFP" and seoa["age"] == 28
        assert len(seoa["speech_styles"]) >= 2
        assert (await http.get("/v1/personas/nobody")).status_code == 404
        assert (await http.get("/v1/personas/..%2Fpyproject")).status_code == 404
        assert (await http.get("/v1/personas/schema")).status_code == 404


async def test_openapi_docs_and_studio_page(server: ServerThread):
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/docs")).status_code == 200
        spec = (await http.get("/openapi.json")).json()
        assert "/v1/chat" in spec["paths"] and "/health" in spec["paths"]
        page = await http.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()


async def test_token_mode_maps_tokens_to_users(server_factory, llm: FakeOpenAI):
    server = server_factory(llm, auth_tokens="t-alice:alice,t-bob:bob")
    ws = await open_ws(server, token="t-alice")
    assert (await ws.wait_for("session.created"))["session"]["user_id"] == "alice"
    ws2 = await open_ws(server)
    assert (await ws2.wait_for("error"))["code"] == "unauthorized"
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/v1/sessions")).status_code == 401
        assert (await http.get("/v1/sessions?token=t-bob")).json()["sessions"] == []
        mine = (await http.get("/v1/sessions", headers={"Authorization": "Bearer t-alice"})).json()
        assert len(mine["sessions"]) == 1
        r = await http.post(
            "/v1/chat",
            json={"user_id": "alice", "message": "hi"},
            headers={"Authorization": "Bearer t-bob"},
        )
        assert r.status_code == 403
