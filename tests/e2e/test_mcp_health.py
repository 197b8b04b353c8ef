"""MCP servers in /health/details: a live one is connected, a dead one is reported and
does not make the server unhealthy; a broken MCP_CONFIG is an error with its reason."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.agent.test_mcp import FAKE, free_port, start_http
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws, text_turn


async def test_health_reports_mcp_servers(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    cfg = tmp_path / "mcp.json"
    cfg.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "weather": {"command": sys.executable, "args": [FAKE, "stdio", "/dev/null"]},
                    "gone": {"url": "http://127.0.0.1:9/mcp"},
                }
            }
        )
    )
    t0 = time.monotonic()
    srv = server_factory(llm, mcp_config=cfg, mcp_reconnect_s=0.5)
    async with httpx.AsyncClient(base_url=srv.url) as c:
        body: dict = {}
        for _ in range(300):
            body = (await c.get("/health/details")).json()
            if "weather: connected" in body["details"].get("mcp", ""):
                break
            await asyncio.sleep(0.1)
        print(f"mcp stdio server connected {time.monotonic() - t0:.2f} s after start")
        assert body["modules"]["mcp"] == "degraded"
        assert "weather: connected (4 tools)" in body["details"]["mcp"]
        assert "gone: down (" in body["details"]["mcp"]
        assert (await c.get("/health")).status_code == 200


async def test_broken_mcp_config_is_an_error_with_its_reason(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    cfg = tmp_path / "mcp.json"
    cfg.write_text('{"mcpServers": {"x": {}}}')
    srv = server_factory(llm, mcp_config=cfg)
    async with httpx.AsyncClient(base_url=srv.url) as c:
        body = (await c.get("/health/details")).json()
        assert body["modules"]["mcp"] == "error"
        assert "'command' (stdio) or 'url'" in body["details"]["mcp"]
        assert (await c.get("/health")).status_code == 503


async def test_a_server_down_at_start_joins_with_its_tools_when_it_comes_up(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    port = free_port()
    cfg = tmp_path / "mcp.json"
    url = f"http://127.0.0.1:{port}/mcp"
    cfg.write_text(
        json.dumps({"mcpServers": {"late": {"url": url, "safeTools": ["get_forecast"]}}})
    )
    srv = server_factory(
        llm,
        mcp_config=cfg,
        mcp_connect_timeout_s=5,
        mcp_reconnect_s=0.2,
        mcp_reconnect_max_s=0.5,
        llm_tools="on",
    )
    proc = None
    try:
        async with httpx.AsyncClient(base_url=srv.url) as c:
            body = (await c.get("/health/details")).json()
            assert body["modules"]["mcp"] == "degraded"
            assert "late: down (" in body["details"]["mcp"] and "retry in" in body["details"]["mcp"]
            ws = await open_ws(srv, persona="emma", token="mcp-late")
            await ws.wait_for("session.created")
            llm.queue_reply("No weather tool yet.")
            await text_turn(ws, "weather?")
            offered = {
                t["function"]["name"] for t in llm.chat_requests(mem0=False)[-1]["body"]["tools"]
            }
            assert "late__get_forecast" not in offered and "search_memory" in offered

            proc = start_http(tmp_path / "late.jsonl", port)  # the server comes up later
            t0 = time.monotonic()
            for _ in range(300):
                body = (await c.get("/health/details")).json()
                if body["modules"]["mcp"] == "ready":
                    break
                await asyncio.sleep(0.1)
            print(f"mcp server joined {time.monotonic() - t0:.2f} s after it came up")
            assert "late: connected (4 tools)" in body["details"]["mcp"]

            # its tools are offered and run in the same process, without a restart
            call = {"name": "late__get_forecast", "arguments": {"city": "Seoul"}}
            llm.queue_reply(tool_calls=[call])
            llm.queue_reply("Sunny in Seoul.")
            _, done = await text_turn(ws, "weather in Seoul?")
            result = ws.of_type("response.tool_result")[-1]
            assert result["ok"] and "sunny, 21 C" in result["summary"]
            assert done["text"] == "Sunny in Seoul."
            first = llm.chat_requests(mem0=False)[-2]["body"]["tools"]
            assert "late__get_forecast" in {t["function"]["name"] for t in first}
            await ws.conn.close()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
