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

from tests.agent.test_mcp import FAKE
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread


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
        assert "weather: connected (3 tools)" in body["details"]["mcp"]
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
