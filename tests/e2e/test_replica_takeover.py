"""Two replicas (real server processes, INSTANCE_ID replica-a / replica-b) sharing one store:
a session resumed on B while still open on A ends on A with a fatal session_taken_over
within SESSION_TAKEOVER_CHECK_S and continues on B with its whole history. Both adapters:
SQLite in a shared DATA_DIR, and MongoDB wire (mongoeco) as replicas run in production."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.procs import server_env
from server.store import new_id
from tests.e2e.test_crash import crash_llm, store_env, wire_mongo  # noqa: F401 (fixtures)
from tests.fakes.openai_server import FakeOpenAI
from tests.forked_server import ForkedServer
from tests.server_harness import WsClient

USER = "takeover-user"


async def replica(
    tmp: Path, name: str, llm: FakeOpenAI, store: dict[str, str], **more: str
) -> ForkedServer:
    run = tmp / name
    run.mkdir()
    env = server_env(
        {
            "DATA_DIR": str(tmp / "data"),  # shared: the SQLite file (unused with MongoDB)
            "LLM_BASE_URL": llm.base_url,
            "LLM_API_KEY": "test-key",
            "LLM_MODEL": "fake-model",
            "MEMORY_ENABLED": "false",
            "FACE_ENABLED": "false",
            "STT_ENABLED": "false",
            "DEFAULT_OUTPUT_AUDIO": "none",
            "LOG_LEVEL": "WARNING",
            "INSTANCE_ID": name,
            "SESSION_TAKEOVER_CHECK_S": "0.25",
            **store,
            **more,
        }
    )
    env = {k: v for k, v in env.items() if v}  # an empty value: the setting left unset
    server = ForkedServer(run, env, timeout_s=60)
    await server.start()
    return server


@pytest.fixture
async def replicas(
    tmp_path: Path,
    crash_llm: FakeOpenAI,  # noqa: F811
    store_env: dict[str, str],  # noqa: F811
) -> AsyncIterator[tuple[ForkedServer, ForkedServer]]:
    crash_llm.clear()
    a = await replica(tmp_path, "replica-a", crash_llm, store_env)
    try:
        b = await replica(tmp_path, "replica-b", crash_llm, store_env)
        try:
            yield a, b
        finally:
            await b.stop()
    finally:
        await a.stop()


async def open_ws(server: ForkedServer, **params: str) -> WsClient:
    ws = WsClient(await connect(server.ws_url(token=USER, **params), open_timeout=10))
    await ws.wait_for("session.created")
    return ws


async def closed_with(ws: WsClient) -> int | None:
    """Read to the end; the close code."""
    try:
        while True:
            await ws.next_event(timeout=10)
    except ConnectionClosed:
        pass
    return ws.conn.close_code


async def test_resumed_on_another_replica_ends_here_and_continues_there(
    replicas: tuple[ForkedServer, ForkedServer],
    crash_llm: FakeOpenAI,  # noqa: F811
) -> None:
    a, b = replicas
    crash_llm.queue_reply("Mochi is a lovely name.")
    on_a = await open_ws(a, persona="emma")
    sid = on_a.events[0]["session"]["id"]
    await on_a.send({"type": "input_text", "text": "My cat is called Mochi."})
    assert (await on_a.wait_for("response.done"))["status"] == "completed"

    t0 = time.monotonic()
    on_b = await open_ws(b, session_id=sid)
    assert on_b.events[0]["session"]["resumed"] is True
    taken = await on_a.wait_for("error", timeout=5)
    waited = time.monotonic() - t0
    assert taken["code"] == "session_taken_over" and taken["fatal"] is True
    assert waited < 2.0, waited
    assert await closed_with(on_a) == 4410

    # B serves it with the whole history; A's close did not pause what B now serves
    crash_llm.queue_reply("It is Mochi.")
    await on_b.send({"type": "input_text", "text": "What is my cat called?"})
    done = await on_b.wait_for("response.done")
    assert done["status"] == "completed" and done["text"] == "It is Mochi."
    sent = [m.get("content") for m in crash_llm.chat_requests()[-1]["body"]["messages"]]
    assert "My cat is called Mochi." in sent and "Mochi is a lovely name." in sent
    async with httpx.AsyncClient(base_url=b.url, timeout=15) as http:
        r = await http.get(f"/v1/sessions/{sid}", headers={"Authorization": f"Bearer {USER}"})
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    await on_b.conn.close()
    print(f"\ntakeover seen on replica A after {waited * 1000:.0f} ms")


async def test_resumed_on_the_same_replica_ends_the_older_connection_at_once(
    replicas: tuple[ForkedServer, ForkedServer],
) -> None:
    a, _ = replicas
    first = await open_ws(a, persona="emma")
    sid = first.events[0]["session"]["id"]
    second = await open_ws(a, session_id=sid)
    taken = await first.wait_for("error", timeout=2)
    assert taken["code"] == "session_taken_over"
    assert await closed_with(first) == 4410
    await second.send({"type": "ping"})  # the newer connection goes on serving
    await second.wait_for("pong")
    await asyncio.wait_for(second.conn.close(), 5)


async def test_replicas_on_one_machine_without_instance_ids_take_sessions_over(
    tmp_path: Path,
    crash_llm: FakeOpenAI,  # noqa: F811
    wire_mongo: str,  # noqa: F811
) -> None:
    """README's "Many replicas" as a new user follows it on one machine: two
    `desktopmate serve` processes in multi mode, one MongoDB, INSTANCE_ID left unset (both
    have the same host name). Starting B must not mark A's live session interrupted, and a
    session resumed on B must end on A."""
    crash_llm.clear()
    store = {"MONGODB_URI": wire_mongo, "MONGODB_DB": f"samehost_{new_id()}"}
    multi = {"REPLICA_MODE": "multi", "INSTANCE_ID": ""}
    a = await replica(tmp_path, "a", crash_llm, store, **multi)
    try:
        on_a = await open_ws(a, persona="emma")
        sid = on_a.events[0]["session"]["id"]
        b = await replica(tmp_path, "b", crash_llm, store, **multi)
        try:
            async with httpx.AsyncClient(base_url=b.url, timeout=15) as http:
                auth = {"Authorization": f"Bearer {USER}"}
                r = await http.get(f"/v1/sessions/{sid}", headers=auth)
            assert r.status_code == 200 and r.json()["status"] == "active", r.text
            on_b = await open_ws(b, session_id=sid)
            assert on_b.events[0]["session"]["resumed"] is True
            taken = await on_a.wait_for("error", timeout=5)
            assert taken["code"] == "session_taken_over", taken
            assert await closed_with(on_a) == 4410
            await on_b.conn.close()
        finally:
            await b.stop()
    finally:
        await a.stop()
