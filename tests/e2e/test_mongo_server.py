"""The whole server against MongoDB: uvicorn on a free port with MONGODB_URI set, real
WebSocket and HTTP clients, the real graph with LangGraph's MongoDBSaver checkpointer.

No mongod exists on these machines: the database is mongoeco's MongoDB-wire-compatible
server on loopback (as in tests/store/conftest.py). It runs in a thread of its own with its
own event loop, because the harness starts and stops the app synchronously
(ServerThread.start/stop block the calling thread while the app's lifespan talks to the
database), and MongoDBSaver's sync client talks to it from worker threads.
Data stays small: mongoeco scans a collection on every insert.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from mongoeco.engines import MemoryEngine
from mongoeco.wire import AsyncMongoEcoProxyServer
from pymongo import AsyncMongoClient
from websockets.exceptions import ConnectionClosed

from server.store import MongoStore, new_id
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws, text_turn

ServerFactory = Callable[..., ServerThread]


class MongoWireThread:
    """mongoeco's wire server on 127.0.0.1, served from a private event loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=0)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.uri = ""

    def start(self) -> MongoWireThread:
        self.thread.start()
        address = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        self.uri = address.uri
        return self

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


@pytest.fixture(scope="module")
def mongo_uri() -> Iterator[str]:
    wire = MongoWireThread().start()
    try:
        yield wire.uri
    finally:
        wire.stop()


@pytest.fixture
def mongo_db() -> str:
    """A fresh database name per test."""
    return f"e2e_{new_id()}"


@pytest.fixture
def start(
    server_factory: ServerFactory, llm: FakeOpenAI, mongo_uri: str, mongo_db: str
) -> Callable[..., ServerThread]:
    """Start a whole server on this test's MongoDB database (mem0 off unless asked)."""

    def go(**over: Any) -> ServerThread:
        return server_factory(
            llm,
            **({"mongodb_uri": mongo_uri, "mongodb_db": mongo_db, "memory_enabled": False} | over),
        )

    return go


async def raw_docs(uri: str, db: str, collection: str, query: dict[str, Any]) -> list[dict]:
    """Read MongoDB directly, behind the server's back."""
    client: AsyncMongoClient = AsyncMongoClient(uri, tz_aware=True)
    try:
        return [d async for d in client[db][collection].find(query)]
    finally:
        await client.close()


async def get_json(server: ServerThread, path: str, user: str) -> tuple[int, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        r = await http.get(path, headers={"Authorization": f"Bearer {user}"})
    return r.status_code, r.json()


async def settled(
    server: ServerThread, user: str, session_id: str, count: int, wait_s: float = 10
) -> list[dict]:
    """The session's messages once ``count`` are stored. The assistant message (and the
    usage counters) are written just after response.done, so a client that hangs up at
    once can race them (see test_hanging_up_right_after_done_keeps_the_turns_writes)."""
    deadline = time.monotonic() + wait_s
    while True:
        status, body = await get_json(server, f"/v1/sessions/{session_id}/messages", user)
        assert status == 200, body
        if len(body["messages"]) >= count or time.monotonic() > deadline:
            return body["messages"]
        await asyncio.sleep(0.05)


async def usage_of(
    server: ServerThread, user: str, key: str = "llm_calls", wait_s: float = 10
) -> dict[str, int]:
    deadline = time.monotonic() + wait_s
    while True:
        status, body = await get_json(server, "/v1/usage", user)
        assert status == 200, body
        if key in body["usage"] or time.monotonic() > deadline:
            return body["usage"]
        await asyncio.sleep(0.05)


def last_prompt(llm: FakeOpenAI) -> list[str]:
    return [m["content"] for m in llm.chat_requests(mem0=False)[-1]["body"]["messages"]]


# ---- tests ---------------------------------------------------------------------------------


async def test_health_says_the_mongo_store_is_ready(start: Callable[..., ServerThread]):
    server = start()
    assert isinstance(server.services.store, MongoStore)
    status, health = await get_json(server, "/health", "anyone")
    assert status == 200 and health["status"] == "ok"
    assert health["modules"]["store"] == "ready" and health["modules"]["agent"] == "ready"
    assert health["modules"]["memory"] == "disabled"
    assert await server.call(server.services.store.ping()) is True


async def test_text_turn_streams_and_is_stored_in_mongo(
    start: Callable[..., ServerThread], llm: FakeOpenAI, mongo_uri: str, mongo_db: str
):
    server = start()
    llm.queue_reply(tokens=["안녕하세요", "! ", "반가워요", "."])
    ws = await open_ws(server, persona="이서아", token="alice")
    created = (await ws.wait_for("session.created"))["session"]
    assert created["user_id"] == "alice" and created["persona"]["id"] == "이서아"
    deltas, done = await text_turn(ws, "안녕!")
    # what arrives from the model together goes out as one delta: the text is the same
    assert "".join(deltas) == "안녕하세요! 반가워요." and deltas
    assert done["status"] == "completed" and done["text"] == "안녕하세요! 반가워요."

    sid = created["id"]
    msgs = await settled(server, "alice", sid, 2)
    usage = await usage_of(server, "alice")
    await ws.conn.close()
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "안녕!"),
        ("assistant", "안녕하세요! 반가워요."),
    ]
    assert msgs[1]["timings"]["ttft_ms"] == done["timings"]["ttft_ms"]
    assert msgs[1]["interrupted"] is False
    assert msgs[0]["created_at"] < msgs[1]["created_at"]

    # it really is in MongoDB: the documents, and LangGraph's checkpoints for the thread
    docs = await raw_docs(mongo_uri, mongo_db, "messages", {"session_id": sid})
    assert sorted(d["role"] for d in docs) == ["assistant", "user"]
    assert all(d["user_id"] == "alice" for d in docs)
    (sess,) = await raw_docs(mongo_uri, mongo_db, "sessions", {"_id": sid})
    assert sess["user_id"] == "alice" and sess["thread_id"] == created["thread_id"]
    assert await raw_docs(mongo_uri, mongo_db, "users", {"_id": "alice"})
    ckpts = await raw_docs(mongo_uri, mongo_db, "checkpoints", {"thread_id": created["thread_id"]})
    assert ckpts, "MongoDBSaver stored no checkpoint for the thread"

    # the session listing and the usage counters come from MongoDB too
    status, listing = await get_json(server, "/v1/sessions", "alice")
    assert status == 200 and [s["id"] for s in listing["sessions"]] == [sid]
    assert usage["llm_calls"] == 1 and usage["output_tokens"] > 0


async def test_second_turn_sees_the_first_resume_continues_and_others_are_refused(
    start: Callable[..., ServerThread], llm: FakeOpenAI, mongo_uri: str, mongo_db: str
):
    server = start()
    ws = await open_ws(server, persona="emma", token="bob")
    sess = (await ws.wait_for("session.created"))["session"]
    llm.queue_reply("Nice to meet you, Bob.")
    await text_turn(ws, "My name is Bob and I like kites.")
    llm.queue_reply("You like kites.")
    _, done = await text_turn(ws, "What do I like?")
    assert done["text"] == "You like kites."
    # the checkpointer gave the graph the first turn
    contents = last_prompt(llm)
    assert "My name is Bob and I like kites." in contents
    assert "Nice to meet you, Bob." in contents
    assert contents[-1] == "What do I like?"
    await settled(server, "bob", sess["id"], 4)
    await ws.conn.close()

    # closing the socket pauses the session (stored)
    deadline = time.monotonic() + 5
    while True:
        (doc,) = await raw_docs(mongo_uri, mongo_db, "sessions", {"_id": sess["id"]})
        if doc["status"] == "paused" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert doc["status"] == "paused"

    # resume by session_id: same thread, the history is there
    ws2 = await open_ws(server, session_id=sess["id"], token="bob")
    again = (await ws2.wait_for("session.created"))["session"]
    assert again["id"] == sess["id"] and again["thread_id"] == sess["thread_id"]
    assert again["resumed"] is True and again["persona"]["id"] == "emma"
    llm.queue_reply("Bob, kites.")
    await text_turn(ws2, "Who am I?")
    contents = last_prompt(llm)
    for said in ("My name is Bob and I like kites.", "You like kites.", "What do I like?"):
        assert said in contents
    await settled(server, "bob", sess["id"], 6)
    await ws2.conn.close()

    # a new session for the same user is a new thread: none of that history
    ws3 = await open_ws(server, persona="emma", token="bob")
    await ws3.wait_for("session.created")
    llm.queue_reply("Hello!")
    await text_turn(ws3, "Hi again")
    assert "My name is Bob and I like kites." not in last_prompt(llm)
    await ws3.conn.close()

    # another user cannot resume it or read it
    intruder = await open_ws(server, session_id=sess["id"], token="mallory")
    err = await intruder.wait_for("error")
    assert err["code"] == "session_not_found" and err["fatal"] is True
    for path in (f"/v1/sessions/{sess['id']}", f"/v1/sessions/{sess['id']}/messages"):
        status, _ = await get_json(server, path, "mallory")
        assert status == 404, path
    status, listing = await get_json(server, "/v1/sessions", "mallory")
    assert status == 200 and listing["sessions"] == []
    # while the owner sees all six messages in order
    status, body = await get_json(server, f"/v1/sessions/{sess['id']}/messages", "bob")
    assert [m["content"] for m in body["messages"]] == [
        "My name is Bob and I like kites.",
        "Nice to meet you, Bob.",
        "What do I like?",
        "You like kites.",
        "Who am I?",
        "Bob, kites.",
    ]


async def test_conversation_survives_a_server_restart(
    start: Callable[..., ServerThread], llm: FakeOpenAI
):
    """Sessions, messages and graph state live in MongoDB, not in the process: a second
    server (fresh data dir, same database) resumes the thread where the first left it.

    The second server gets its own fake LLM (another base_url): langchain-openai caches one
    async HTTP client per base_url for the whole process, and the first server's is bound
    to its closed event loop (a harness-only effect, reported; one process runs one app)."""
    first = start()
    ws = await open_ws(first, persona="emma", token="erin")
    sess = (await ws.wait_for("session.created"))["session"]
    llm.queue_reply("Noted: blue.")
    await text_turn(ws, "My favourite colour is blue.")
    await settled(first, "erin", sess["id"], 2)
    await ws.conn.close()
    await asyncio.sleep(0.1)
    first.stop()

    with FakeOpenAI(dims=llm.dims) as llm2:
        second = start(llm_base_url=llm2.base_url)
        assert second.settings.data_dir != first.settings.data_dir
        ws2 = await open_ws(second, session_id=sess["id"], token="erin")
        again = (await ws2.wait_for("session.created"))["session"]
        assert again["thread_id"] == sess["thread_id"] and again["resumed"] is True
        llm2.queue_reply("Blue!")
        _, done = await text_turn(ws2, "What is my favourite colour?")
        assert done["status"] == "completed" and done["text"] == "Blue!"
        contents = last_prompt(llm2)
        assert "My favourite colour is blue." in contents and "Noted: blue." in contents
        msgs = await settled(second, "erin", sess["id"], 4)
        await ws2.conn.close()
    assert [m["content"] for m in msgs] == [
        "My favourite colour is blue.",
        "Noted: blue.",
        "What is my favourite colour?",
        "Blue!",
    ]


async def test_ended_session_is_stored_and_cannot_be_resumed(
    start: Callable[..., ServerThread], llm: FakeOpenAI, mongo_uri: str, mongo_db: str
):
    server = start()
    ws = await open_ws(server, persona="emma", token="gina")
    sess = (await ws.wait_for("session.created"))["session"]
    llm.queue_reply("Bye!")
    await text_turn(ws, "Goodbye")
    await settled(server, "gina", sess["id"], 2)
    await ws.send({"type": "session.end"})
    ended = await ws.wait_for("session.ended")
    assert ended["session_id"] == sess["id"]
    (doc,) = await raw_docs(mongo_uri, mongo_db, "sessions", {"_id": sess["id"]})
    assert doc["status"] == "ended" and doc["ended_at"] is not None
    status, rec = await get_json(server, f"/v1/sessions/{sess['id']}", "gina")
    assert status == 200 and rec["status"] == "ended" and rec["ended_at"]
    again = await open_ws(server, session_id=sess["id"], token="gina")
    err = await again.wait_for("error")
    assert err["code"] == "session_ended" and err["fatal"] is True


async def test_rest_chat_threads_live_in_mongo(start: Callable[..., ServerThread], llm: FakeOpenAI):
    server = start()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        llm.queue_reply("Hi Hana.")
        r1 = await http.post("/v1/chat", json={"user_id": "hana", "message": "I am Hana."})
        assert r1.status_code == 200, r1.text
        thread = r1.json()["thread_id"]
        assert r1.json()["text_response"] == "Hi Hana."
        llm.queue_reply("You are Hana.")
        r2 = await http.post(
            "/v1/chat", json={"user_id": "hana", "thread_id": thread, "message": "Who am I?"}
        )
        assert r2.status_code == 200 and r2.json()["thread_id"] == thread
        assert "I am Hana." in last_prompt(llm)
        r3 = await http.post(
            "/v1/chat", json={"user_id": "ivan", "thread_id": thread, "message": "hi"}
        )
        assert r3.status_code == 404


async def test_long_term_memory_works_beside_the_mongo_store(
    start: Callable[..., ServerThread], llm: FakeOpenAI
):
    """mem0 on (its own embedded Qdrant on disk) with MongoDB holding sessions and graph
    state: a fact from one session reaches a new session's prompt, not its history."""
    server = start(memory_enabled=True)
    assert server.services.modules["memory"] == "ready"
    ws = await open_ws(server, persona="emma", token="hana")
    await ws.wait_for("session.created")
    llm.queue_reply("Lovely, hiking is great.")
    await text_turn(ws, "I love hiking in the Alps.")
    await server.call(server.services.memory.drain())
    assert llm.chat_requests(mem0=True)
    ws2 = await open_ws(server, persona="emma", token="hana")
    sess2 = (await ws2.wait_for("session.created"))["session"]
    llm.queue_reply("You love hiking!")
    await text_turn(ws2, "What do I love doing?")
    prompt = last_prompt(llm)
    assert "hiking" in prompt[0].split("remember")[-1]
    assert "I love hiking in the Alps." not in prompt[1:]
    await settled(server, "hana", sess2["id"], 2)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_unreachable_mongo_fails_startup_clearly(
    server_factory: ServerFactory, capfd: pytest.CaptureFixture[str]
):
    """Nothing listens on port 1: the store cannot open and the server does not start
    (rather than serving with a broken store); the log says why. (uvicorn ends its thread
    with SystemExit(3) on a failed lifespan: the filtered warning.)"""
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="did not start"):
        server_factory(
            None,
            mongodb_uri="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300&connectTimeoutMS=300",
            memory_enabled=False,
        )
    assert time.monotonic() - t0 < 20
    err = capfd.readouterr().err
    assert "store_unavailable" in err and "ServerSelectionTimeoutError" in err


async def test_hanging_up_right_after_done_keeps_the_turns_writes(
    start: Callable[..., ServerThread], llm: FakeOpenAI
):
    server = start()
    for i in range(3):
        user = f"quick{i}"
        llm.queue_reply("Short reply.")
        ws = await open_ws(server, persona="emma", token=user)
        sess = (await ws.wait_for("session.created"))["session"]
        await text_turn(ws, "hi")
        await ws.conn.close()  # at once, as a closing tab does
        msgs = await settled(server, user, sess["id"], 2, wait_s=2)
        assert [m["role"] for m in msgs] == ["user", "assistant"]
        assert (await usage_of(server, user, wait_s=2)).get("llm_calls") == 1


def _server_on_wire(
    server_factory: ServerFactory, llm: FakeOpenAI
) -> tuple[MongoWireThread, ServerThread]:
    """A server on a MongoDB-wire server of its own, which the test stops (1 s timeouts)."""
    wire = MongoWireThread().start()
    server = server_factory(
        llm,
        mongodb_uri=wire.uri,
        mongodb_db=f"e2e_{new_id()}",
        memory_enabled=False,
        mongodb_timeout_s=1,
    )
    return wire, server


async def test_a_session_opened_while_mongodb_is_down_is_refused_with_a_reason(
    server_factory: ServerFactory, llm: FakeOpenAI
):
    """MongoDB (shared by every replica) goes away: a client connecting gets one fatal
    error event saying so and close 1013 (try again later) within MONGODB_TIMEOUT_S,
    not a dropped connection without a close frame and a traceback in the log."""
    wire, server = _server_on_wire(server_factory, llm)
    first = await open_ws(server, persona="emma", token="mia")
    await first.wait_for("session.created")
    await first.conn.close()
    wire.stop()
    ws = await open_ws(server, persona="emma", token="mia")
    err = await ws.wait_for("error", timeout=30)
    assert err["code"] == "database_unavailable" and err["fatal"] is True, err
    assert "database" in err["message"]
    with pytest.raises(ConnectionClosed):
        await ws.next_event(timeout=10)
    assert ws.conn.close_code == 1013


async def test_a_turn_while_mongodb_is_down_says_the_database_failed(
    server_factory: ServerFactory, llm: FakeOpenAI
):
    """MongoDB goes away mid-session: the next turn ends with an error that names the
    database (the user's words could not be stored), not "a server error", and the socket
    stays open for when it is back."""
    wire, server = _server_on_wire(server_factory, llm)
    ws = await open_ws(server, persona="emma", token="noa")
    await ws.wait_for("session.created")
    llm.queue_reply("Hello Noa.")
    await text_turn(ws, "Hi, I am Noa.")
    wire.stop()
    await ws.send({"type": "input_text", "text": "Are you still there?"})
    err = await ws.wait_for("error", timeout=60)
    assert err["code"] == "database_unavailable" and err["fatal"] is False, err
    assert "database" in err["message"]
    await ws.send({"type": "ping"})
    await ws.wait_for("pong")


async def test_rest_calls_while_mongodb_is_down_answer_503_with_the_reason(
    server_factory: ServerFactory, llm: FakeOpenAI
):
    """A REST call that needs the store while MongoDB is away: 503 (retry later) saying the
    database did not answer, not 500 "Internal server error."."""
    wire, server = _server_on_wire(server_factory, llm)
    status, _ = await get_json(server, "/v1/sessions", "ivy")
    assert status == 200
    wire.stop()
    status, body = await get_json(server, "/v1/sessions", "ivy")
    assert status == 503, body
    assert "database did not answer" in body["detail"], body
