"""kill -9: what a client was told is stored survives, and a crashed session recovers.

The server runs as a real process of its own (``desktopmate serve``, forked from a
preloaded forkserver: tests/forked_server.py), killed with SIGKILL and restarted on the
same data: the SQLite files in its data dir, or a MongoDB database on mongoeco's wire
server, which runs in this test process and so outlives the killed server. The fake LLM
also runs here; the test scripts it and reads its requests. Start-up is kept short: no
face model, no memory, no STT model, no reply audio.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from bench.procs import server_env
from server.store import new_id
from tests.e2e.test_mongo_server import MongoWireThread
from tests.fakes.openai_server import FakeOpenAI
from tests.forked_server import ForkedServer
from tests.server_harness import WsClient

# Kill -9 trials per store, each a restart. Most kill at once: a write made after
# response.done is lost only by a kill that comes before it is under way. With the reply's
# write moved after response.done (the bug this test is for), 20 trials at random 0-20 ms
# (cubed) lost the reply 3 times on each store, all three at delays under 0.02 ms (none at
# 0.13 ms or later). These 10, 7 of them at once, lost it 7 times on SQLite and 4 on MongoDB
# (whose wire server still applies a write the killed server had sent). The other 3 keep
# random 0-20 ms delays: a kill amid what else the server does after a turn keeps what was
# acknowledged as well.
pytestmark = pytest.mark.timeout(900)
TRIALS = 10
MAX_KILL_DELAY_S = 0.020


def kill_delay_s(trial: int, rng: random.Random) -> float:
    """0 (at once) for 7 trials in 10, else 0-20 ms (cubed: most under a few ms)."""
    return MAX_KILL_DELAY_S * rng.random() ** 3 if trial % 3 == 2 else 0.0


@pytest.fixture(scope="module")
def crash_llm() -> Iterator[FakeOpenAI]:
    """One fake LLM for every server of this module (they are separate processes)."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def wire_mongo() -> Iterator[str]:
    wire = MongoWireThread().start()
    try:
        yield wire.uri
    finally:
        wire.stop()


@pytest.fixture(params=["sqlite", "mongo"])
def store_env(request: pytest.FixtureRequest, wire_mongo: str) -> dict[str, str]:
    if request.param == "mongo":
        return {"MONGODB_URI": wire_mongo, "MONGODB_DB": f"crash_{new_id()}"}
    return {}


class Crashable:
    """A server process on one data dir and database, killed and restarted at will."""

    def __init__(self, workdir: Path, llm: FakeOpenAI, store_env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = server_env(
            {
                "DATA_DIR": str(workdir / "data"),
                "LLM_BASE_URL": llm.base_url,
                "LLM_API_KEY": "test-key",
                "LLM_MODEL": "fake-model",
                "EMBED_DIMS": str(llm.dims),
                "MEMORY_ENABLED": "false",
                "FACE_ENABLED": "false",
                "STT_ENABLED": "false",  # a missing model would make /health (readiness) 503
                "DEFAULT_OUTPUT_AUDIO": "none",
                "LOG_LEVEL": "WARNING",
                "INSTANCE_ID": "crash-test",
                **store_env,
            }
        )
        self.server: ForkedServer | None = None
        self.starts = 0

    async def start(self) -> ForkedServer:
        self.starts += 1
        run = self.workdir / f"run{self.starts}"  # its own log; the data dir is shared
        run.mkdir()
        self.server = ForkedServer(run, self.env, timeout_s=60)
        await self.server.start()
        return self.server

    def kill(self) -> None:
        assert self.server is not None
        self.server.kill()

    async def reap(self) -> None:
        assert self.server is not None
        assert await self.server.wait_exit() == -signal.SIGKILL

    async def get(self, path: str, user: str) -> Any:
        assert self.server is not None
        async with httpx.AsyncClient(base_url=self.server.url, timeout=15) as http:
            r = await http.get(path, headers={"Authorization": f"Bearer {user}"})
        assert r.status_code == 200, r.text
        return r.json()

    async def open_ws(self, **params: str) -> WsClient:
        assert self.server is not None
        ws = WsClient(await connect(self.server.ws_url(**params), open_timeout=10))
        await ws.wait_for("session.created")
        return ws


@pytest.fixture
async def crashable(
    tmp_path: Path, crash_llm: FakeOpenAI, store_env: dict[str, str]
) -> AsyncIterator[Crashable]:
    crash_llm.clear()
    c = Crashable(tmp_path, crash_llm, store_env)
    try:
        yield c
    finally:
        if c.server is not None:
            await c.server.stop()


async def test_kill_after_response_done_loses_nothing(
    crashable: Crashable, crash_llm: FakeOpenAI, store_env: dict[str, str]
) -> None:
    """response.done completed means stored: SIGKILL at once or 0-20 ms after it, every
    trial, and the restarted server has the user's message and the reply."""
    rng = random.Random(11)
    await crashable.start()
    # the real `desktopmate serve` process runs on uvloop (EVENT_LOOP=auto, server/cli.py)
    assert (await crashable.get("/health/details", "u0"))["event_loop"] == "uvloop"
    acknowledged: list[tuple[str, str, str, str]] = []  # user, session, said, reply
    for i in range(TRIALS):
        user, said, reply = f"u{i}", f"question {i}", f"Answer number {i} is stored."
        crash_llm.queue_reply(reply)
        ws = await crashable.open_ws(persona="emma", token=user)
        sid = ws.events[0]["session"]["id"]
        await ws.send({"type": "input_text", "text": said})
        done = await ws.wait_for("response.done")
        # at once, or 0-20 ms later: the writes of the turn, if they came after response.done,
        # would still be under way
        await asyncio.sleep(kill_delay_s(i, rng))
        crashable.kill()
        assert done["status"] == "completed" and done["text"] == reply
        acknowledged.append((user, sid, said, reply))
        await crashable.reap()
        await crashable.start()
    lost = []
    for user, sid, said, reply in acknowledged:
        body = await crashable.get(f"/v1/sessions/{sid}/messages", user)
        got = [(m["role"], m["content"]) for m in body["messages"]]
        if got != [("user", said), ("assistant", reply)]:
            lost.append((sid, got))
    adapter = "mongo" if store_env else "sqlite"
    print(f"\nkill -9 after response.done ({adapter}): {TRIALS} trials, {len(lost)} lost")
    assert not lost


async def test_session_cut_mid_turn_is_interrupted_and_the_model_sees_its_message(
    crashable: Crashable, crash_llm: FakeOpenAI
) -> None:
    """kill -9 while the LLM is answering: after the restart the session is `interrupted`
    (not `active` forever), and once resumed the model's history holds the message whose
    turn the crash cut, as the stored transcript does."""
    await crashable.start()
    crash_llm.queue_reply("Hello Kim.")
    crash_llm.queue_reply("This reply never arrives.", ttft_ms=30_000)
    ws = await crashable.open_ws(persona="emma", token="kim")
    sid = ws.events[0]["session"]["id"]
    await ws.send({"type": "input_text", "text": "Hi, I am Kim."})
    assert (await ws.wait_for("response.done"))["status"] == "completed"
    cut = "Please remember that my cat is called Miso."
    await ws.send({"type": "input_text", "text": cut})
    await ws.wait_for("response.created")
    for _ in range(200):  # the turn is under way: its message stored, the LLM asked
        stored = (await crashable.get(f"/v1/sessions/{sid}/messages", "kim"))["messages"]
        asked = [r for r in crash_llm.chat_requests(mem0=False) if cut in json.dumps(r["body"])]
        if stored[-1]["content"] == cut and asked:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the turn never got under way")
    session = await crashable.get(f"/v1/sessions/{sid}", "kim")
    assert session["status"] == "active"
    crashable.kill()
    await crashable.reap()

    await crashable.start()
    session = await crashable.get(f"/v1/sessions/{sid}", "kim")
    assert session["status"] == "interrupted"
    transcript = (await crashable.get(f"/v1/sessions/{sid}/messages", "kim"))["messages"]
    assert [m["content"] for m in transcript] == ["Hi, I am Kim.", "Hello Kim.", cut]

    ws2 = await crashable.open_ws(session_id=sid, token="kim")
    assert ws2.events[0]["session"]["resumed"] is True
    assert (await crashable.get(f"/v1/sessions/{sid}", "kim"))["status"] == "active"
    crash_llm.queue_reply("Your cat is Miso.")
    await ws2.send({"type": "input_text", "text": "What is my cat called?"})
    done = await ws2.wait_for("response.done")
    assert done["status"] == "completed" and done["text"] == "Your cat is Miso."
    prompt = crash_llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    said = [(m["role"], m["content"]) for m in prompt if m["role"] != "system"]
    assert said == [
        ("user", "Hi, I am Kim."),
        ("assistant", "Hello Kim."),
        ("user", cut),
        ("user", "What is my cat called?"),
    ]
    await ws2.conn.close()
