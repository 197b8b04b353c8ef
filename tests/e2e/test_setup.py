"""POST /v1/setup/test over a real server against the fake model server: a working
endpoint, a rejected key, a refused connection, nothing configured; never the key itself."""

from __future__ import annotations

import socket

import httpx

from tests.fakes.openai_server import FakeOpenAI


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_connection_test_reports_each_service(server_factory, llm: FakeOpenAI):
    server = server_factory(llm)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        ok = await http.post("/v1/setup/test", json={"targets": ["llm", "embeddings", "vlm"]})
        llm.queue_reply("nope", fail_status=401)
        rejected = await http.post("/v1/setup/test", json={})
        bad = await http.post("/v1/setup/test", json={"targets": ["llm", "telepathy"]})
    body = ok.json()
    assert ok.status_code == 200 and body["ok"] is True, body
    assert [r["target"] for r in body["results"]] == ["llm", "embeddings", "vlm"]
    assert all(r["latency_ms"] >= 0 and r["base_url"] == llm.base_url for r in body["results"])
    chat_calls = [r for r in llm.requests if r["path"].endswith("/chat/completions")]
    assert chat_calls and chat_calls[-1]["body"]["max_tokens"] == 1
    assert rejected.json()["ok"] is False
    assert rejected.json()["results"][0]["code"] == "unauthorized"
    assert "test-key" not in ok.text + rejected.text  # the key never comes back
    assert bad.status_code == 422


async def test_connection_test_explains_unreachable_and_unconfigured(server_factory):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    down = server_factory(None, llm_base_url=url, llm_api_key="k", memory_enabled=False)
    bare = server_factory(None)
    async with httpx.AsyncClient(timeout=30) as http:
        r = (await http.post(f"{down.url}/v1/setup/test", json={"targets": ["llm"]})).json()
        n = (await http.post(f"{bare.url}/v1/setup/test", json={"targets": ["llm"]})).json()
    [result] = r["results"]
    assert result["ok"] is False and result["code"] == "unreachable"
    assert url in result["message"]
    [none] = n["results"]
    assert none["code"] == "not_configured" and "LLM_BASE_URL" in none["message"]
