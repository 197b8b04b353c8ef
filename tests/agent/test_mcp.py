"""MCP tools over real MCP servers (the official SDK's MCPServer, tests/fakes/mcp_server.py)
started by the test: stdio and streamable HTTP, a dead server, a server that dies and
comes back, per-call timeouts."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from server.agent.mcp import McpConfigError, McpManager, ServerEntry, load_config

FAKE = str(Path(__file__).resolve().parents[1] / "fakes" / "mcp_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http(effects: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, FAKE, "http", str(effects), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("MCP HTTP server did not start")


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    effects, port = tmp_path / "http_effects.jsonl", free_port()
    proc = start_http(effects, port)
    yield f"http://127.0.0.1:{port}/mcp", effects, port
    proc.kill()
    proc.wait()


@pytest.fixture
async def manager(tmp_path: Path, http_server: tuple[str, Path, int]) -> AsyncIterator[McpManager]:
    url = http_server[0]
    cfg = tmp_path / "mcp.json"
    cfg.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "weather": {
                        "command": sys.executable,
                        "args": [FAKE, "stdio", str(tmp_path / "stdio_effects.jsonl")],
                        "safeTools": ["get_forecast"],
                    },
                    "remote": {"url": url, "headers": {"X-Test": "1"}},
                    "dead": {"command": str(tmp_path / "no-such-server")},
                }
            }
        )
    )
    m = McpManager(load_config(cfg), call_timeout_s=1.0, connect_timeout_s=15, reconnect_s=0.3)
    m.start()
    await m.wait_connected("weather", 30)
    await m.wait_connected("remote", 30)
    yield m
    await m.close()


async def test_tools_are_prefixed_marked_and_called(manager: McpManager, tmp_path: Path) -> None:
    tools = {t.name: t for t in manager.tools()}
    assert {"weather__get_forecast", "weather__set_alarm", "remote__set_alarm"} <= set(tools)
    assert not any(n.startswith("dead__") for n in tools)
    assert tools["weather__get_forecast"].consequential is False  # safeTools
    assert tools["weather__set_alarm"].consequential is True  # MCP tools: consequential
    assert tools["remote__get_forecast"].consequential is True
    assert tools["weather__get_forecast"].input_schema["required"] == ["city"]

    r = await manager.call("weather__get_forecast", {"city": "Seoul"})
    assert r.ok and r.text == "Seoul: sunny, 21 C"
    r = await manager.call("weather__set_alarm", {"time": "07:00", "label": "gym"})
    assert r.ok and r.text == "alarm set for 07:00"
    lines = (tmp_path / "stdio_effects.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [
        {"tool": "set_alarm", "time": "07:00", "label": "gym"}
    ]


async def test_http_server_and_its_effect(
    manager: McpManager, http_server: tuple[str, Path, int]
) -> None:
    r = await manager.call("remote__set_alarm", {"time": "06:30"})
    assert r.ok
    assert json.loads(http_server[1].read_text())["time"] == "06:30"
    bad = await manager.call("remote__set_alarm", {})  # missing required argument
    assert not bad.ok and "time" in bad.text


async def test_dead_server_is_reported_and_never_blocks(manager: McpManager) -> None:
    st = manager.status()
    assert st["dead"]["status"] == "down" and st["dead"]["tools"] == []
    assert st["dead"]["detail"]
    assert st["weather"]["status"] == "connected"
    r = await manager.call("dead__anything", {})
    assert not r.ok and "no MCP tool" in r.text


async def test_call_timeout_is_a_failed_result(manager: McpManager) -> None:
    t0 = time.perf_counter()
    r = await manager.call("weather__slow", {"seconds": 30})
    assert not r.ok and "longer than 1 s" in r.text
    assert time.perf_counter() - t0 < 10
    # the session still works afterwards
    assert (await manager.call("weather__get_forecast", {"city": "Busan"})).ok


async def test_server_that_dies_is_withdrawn_and_reconnected(
    tmp_path: Path, http_server: tuple[str, Path, int]
) -> None:
    effects, port = tmp_path / "e2.jsonl", free_port()
    proc = start_http(effects, port)
    m = McpManager(
        {"srv": ServerEntry(url=f"http://127.0.0.1:{port}/mcp")},
        call_timeout_s=2,
        connect_timeout_s=5,
        reconnect_s=0.3,
    )
    m.start()
    try:
        await m.wait_connected("srv", 30)
        proc.kill()
        proc.wait()
        r = await m.call("srv__get_forecast", {"city": "Seoul"})
        assert not r.ok
        async with asyncio.timeout(20):
            while m.status()["srv"]["status"] == "connected":
                m.changed.clear()
                await m.changed.wait()
        assert m.tools() == []
        proc = start_http(effects, port)
        await m.wait_connected("srv", 30)
        assert (await m.call("srv__get_forecast", {"city": "Seoul"})).ok
    finally:
        await m.close()
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"servers": {}}),
        json.dumps({"mcpServers": {"a": {}}}),
        json.dumps({"mcpServers": {"a": {"command": "x", "url": "http://y"}}}),
        json.dumps({"mcpServers": {"a__b": {"command": "x"}}}),
    ],
)
def test_bad_config_is_refused_with_a_reason(tmp_path: Path, content: str) -> None:
    p = tmp_path / "mcp.json"
    p.write_text(content)
    with pytest.raises(McpConfigError, match="MCP_CONFIG"):
        load_config(p)


async def test_retries_back_off_up_to_the_limit_and_reset_once_connected(tmp_path: Path) -> None:
    port = free_port()
    m = McpManager(
        {"late": ServerEntry(url=f"http://127.0.0.1:{port}/mcp")},
        connect_timeout_s=5,
        reconnect_s=0.05,
        reconnect_max_s=0.2,
    )
    waits: list[float | None] = []
    m.listeners.append(lambda: waits.append(m.status()["late"]["retry_in_s"]))
    m.start()
    proc = None
    try:
        async with asyncio.timeout(20):
            while len(waits) < 5:
                m.changed.clear()
                await m.changed.wait()
        assert waits[:5] == [0.05, 0.1, 0.2, 0.2, 0.2]  # doubling, held at the limit
        assert m.status()["late"]["status"] == "down" and m.tools() == []
        proc = start_http(tmp_path / "late.jsonl", port)
        await m.wait_connected("late", 30)
        assert m.status()["late"]["retry_in_s"] is None
        assert "late__get_forecast" in {t.name for t in m.tools()}
    finally:
        await m.close()
        if proc is not None:
            proc.kill()
            proc.wait()


async def test_close_returns_whenever_it_comes_during_a_failing_attempt() -> None:
    """A cancel that lands while the SDK's task group holds a connection error comes back as
    that error, not as a cancel: the loop took it for a failed attempt and went on, and
    shutdown hung (19 of 150 closes here, one event-loop step later each time). Every close
    now ends its loop, wherever it lands."""
    entry = ServerEntry(url=f"http://127.0.0.1:{free_port()}/mcp")  # nothing listens
    hung = []
    for steps in range(150):
        m = McpManager({"dead": entry}, connect_timeout_s=5, reconnect_s=0.001)
        m.start()
        for _ in range(steps):
            await asyncio.sleep(0)
        closing = asyncio.create_task(m.close())
        done, _ = await asyncio.wait({closing}, timeout=3)
        task = m._servers["dead"].task
        if not done or task is None or not task.done():
            hung.append(steps)
            if task is not None:
                task.cancel()
    assert hung == []
