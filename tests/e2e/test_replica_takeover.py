"""Two replicas (real server processes, INSTANCE_ID replica-a / replica-b) sharing one store:
a session resumed on B while still open on A ends on A with a fatal session_taken_over
within SESSION_TAKEOVER_CHECK_S and continues on B with its whole history. Both adapters:
SQLite in a shared DATA_DIR, and MongoDB wire (mongoeco) as replicas run in production."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.procs import server_env
from server.hub.takeover import MESSAGE as TAKEN_OVER_MESSAGE
from server.store import new_id
from tests.dmp_client import BridgeConfig, DmpClient
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


async def realtime_until(conn: Any, type_: str) -> Any:
    """The first Realtime event of this type."""
    async with asyncio.timeout(10):
        while (ev := await conn.recv()).type != type_:
            pass
    return ev


async def realtime_close_code(conn: Any) -> int | None:
    """Read to the end; the close code."""
    try:
        async with asyncio.timeout(10):
            while True:
                await conn.recv()
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd is not None else None


async def test_realtime_and_dmp_sessions_resumed_on_another_replica_end_there(
    replicas: tuple[ForkedServer, ForkedServer],
    crash_llm: FakeOpenAI,  # noqa: F811
) -> None:
    """The other protocols' clients (the openai SDK's realtime client, the DesktopMatePlus
    bridge) move a session the same way: ``?session_id=`` / a chat_message's session_id on
    B ends the connection on A with session_taken_over (close 4410), also when the DMP
    socket on A had switched to that session from another one."""
    a, b = replicas
    sdk_a, sdk_b = (AsyncOpenAI(base_url=f"{s.url}/v1", api_key=USER) for s in (a, b))
    async with sdk_a.realtime.connect(model="emma") as on_a:
        sid = (await realtime_until(on_a, "session.created")).session.id
        crash_llm.queue_reply("Kites are fun.")
        await on_a.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "I fly kites."}],
            }
        )
        await on_a.response.create()
        await realtime_until(on_a, "response.done")
        async with sdk_b.realtime.connect(model="emma", extra_query={"session_id": sid}) as on_b:
            assert (await realtime_until(on_b, "session.created")).session.id == sid
            taken = await realtime_until(on_a, "error")
            assert taken.error.code == "session_taken_over", taken
            assert await realtime_close_code(on_a) == 4410

    def bridge(server: ForkedServer) -> BridgeConfig:
        url = f"ws://127.0.0.1:{server.port}/v1/chat/stream"
        return BridgeConfig(ws_url=url, rest_url=server.url, user_id=USER, agent_id="emma")

    dmp_a = await DmpClient.open(bridge(a))
    crash_llm.queue_reply("Hello.")
    first = (await dmp_a.turn("Hi, I am Dana.")).start["session_id"]
    crash_llm.queue_reply("Hello again.")  # no session_id: the socket moves to a new session
    sid = (await dmp_a.turn("Hi, I am Dana.")).start["session_id"]
    assert sid != first
    dmp_b = await DmpClient.open(bridge(b))
    crash_llm.queue_reply("Dana, you said.")
    turn = await dmp_b.turn("Who am I?", session_id=sid)
    assert turn.end["session_id"] == sid and turn.end["content"] == "Dana, you said."
    code, _ = await asyncio.wait_for(dmp_a.closed, 10)
    assert code == 4410
    assert [e["error"] for e in dmp_a.of_type("error")] == [TAKEN_OVER_MESSAGE]
    await dmp_b.close()


async def test_resumed_mid_reply_and_spoken_to_at_once_the_cut_reply_keeps_its_place(
    replicas: tuple[ForkedServer, ForkedServer],
    crash_llm: FakeOpenAI,  # noqa: F811
) -> None:
    """The session moves to B while A is still streaming a reply, and the user's first
    message on B comes at once (before A has heard of the takeover): A's reply, cut where
    A stopped, stays right after its question, in the transcript and in B's prompt."""
    a, b = replicas
    on_a = await open_ws(a, persona="emma")
    sid = on_a.events[0]["session"]["id"]
    crash_llm.queue_reply(tokens=[f"w{i} " for i in range(400)], token_ms=20)
    await on_a.send({"type": "input_text", "text": "Tell me a long story."})
    await on_a.wait_for("response.text.delta")
    on_b = await open_ws(b, session_id=sid)
    crash_llm.queue_reply("Second reply.")
    await on_b.send({"type": "input_text", "text": "Second question."})
    assert (await on_b.wait_for("response.done", timeout=20))["status"] == "completed"
    assert (await on_a.wait_for("error", timeout=5))["code"] == "session_taken_over"
    prompt = [m.get("content") for m in crash_llm.chat_requests()[-1]["body"]["messages"][1:]]
    assert prompt[0] == "Tell me a long story." and prompt[-1] == "Second question."
    assert len(prompt) == 3 and prompt[1].startswith("w0 w1 "), prompt  # the cut reply
    async with httpx.AsyncClient(base_url=b.url, timeout=15) as http:
        auth = {"Authorization": f"Bearer {USER}"}
        r = await http.get(f"/v1/sessions/{sid}/messages", headers=auth)
    stored = [(m["role"], m["content"], m["interrupted"]) for m in r.json()["messages"]]
    assert stored == [
        ("user", "Tell me a long story.", False),
        ("assistant", prompt[1], True),
        ("user", "Second question.", False),
        ("assistant", "Second reply.", False),
    ], stored
    await on_b.conn.close()


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


async def shared_flag(server: ForkedServer, want: bool) -> dict[str, Any]:
    """/health/details once its instance_id_shared is (or is not) there."""
    for _ in range(100):
        details = await server.details()
        if ("instance_id_shared" in details) == want:
            return details
        await asyncio.sleep(0.1)
    return details


async def test_replicas_given_one_instance_id_by_mistake_are_told(
    tmp_path: Path,
    crash_llm: FakeOpenAI,  # noqa: F811
    wire_mongo: str,  # noqa: F811
) -> None:
    """INSTANCE_ID=app in the env file every replica reads: each would recover the other's
    live sessions and never see them taken over. Both say so (an error in the log,
    /health/details) within a heartbeat; a process restarted after kill -9 with its own
    id is not a twin, and the warning goes once the twin stops."""
    store = {"MONGODB_URI": wire_mongo, "MONGODB_DB": f"twins_{new_id()}"}
    same = {"REPLICA_MODE": "multi", "INSTANCE_ID": "app", "SESSION_HEARTBEAT_S": "0.25"}
    crashed = await replica(tmp_path, "a0", crash_llm, store, **same)
    crashed.kill()
    await crashed.wait_exit()
    a = await replica(tmp_path, "a", crash_llm, store, **same)  # its previous run: no twin
    try:
        assert (await a.details())["instance_id"] == "app"
        b = await replica(tmp_path, "b", crash_llm, store, **same)
        try:
            for server in (a, b):
                details = await shared_flag(server, True)
                assert "another live process" in details.get("instance_id_shared", ""), details
                assert "Another live server process runs with INSTANCE_ID='app'" in (
                    server.log_tail()
                )
        finally:
            await b.stop()
        assert "instance_id_shared" not in await shared_flag(a, False)
    finally:
        await a.stop()
