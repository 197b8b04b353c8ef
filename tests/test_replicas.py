"""Many replicas: REPLICA_MODE=multi refuses stores only one machine can own, and mem0's
vector store can be a server (Qdrant URL, pgvector or Chroma) instead of embedded Qdrant."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.agent.memory import LongTermMemory, mem0_config
from server.config import Settings
from server.replicas import replica_refusal, replica_refusals
from server.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
MEMORY_ON = {"llm_base_url": "http://127.0.0.1:9/v1"}  # an embedder is configured


def settings(**over: object) -> Settings:
    return Settings(_env_file=None, **over)  # type: ignore[call-arg]


def test_single_mode_accepts_the_embedded_stores():
    assert replica_refusals(settings(**MEMORY_ON)) == []


def test_multi_mode_refuses_embedded_sqlite_and_embedded_qdrant():
    problems = replica_refusals(settings(replica_mode="multi", **MEMORY_ON))
    assert len(problems) == 2
    assert "embedded SQLite" in problems[0] and "MONGODB_URI" in problems[0]
    assert "embedded Qdrant" in problems[1] and "MEMORY_QDRANT_URL" in problems[1]


@pytest.mark.parametrize(
    ("over", "refused"),
    [
        ({"mongodb_uri": "mongodb://m:27017", "memory_qdrant_url": "http://q:6333"}, False),
        ({"mongodb_uri": "mongodb://m:27017", "memory_enabled": False}, False),
        ({"mongodb_uri": "mongodb://m:27017"}, True),  # memory on, embedded Qdrant
        ({"memory_qdrant_url": "http://q:6333"}, True),  # SQLite
        ({"mongodb_uri": "mongodb://m", "memory_vector_store": "pgvector"}, True),  # no URL
        (
            {
                "mongodb_uri": "mongodb://m",
                "memory_vector_store": "pgvector",
                "memory_pgvector_url": "postgresql://u:p@pg:5432/db",
            },
            False,
        ),
        ({"mongodb_uri": "mongodb://m", "memory_vector_store": "chroma"}, True),  # no URL
        (
            {
                "mongodb_uri": "mongodb://m",
                "memory_vector_store": "chroma",
                "memory_chroma_url": "https://chroma:8000",  # mem0's Chroma has no TLS
            },
            True,
        ),
        (
            {
                "mongodb_uri": "mongodb://m",
                "memory_vector_store": "chroma",
                "memory_chroma_url": "http://chroma:8000",
            },
            False,
        ),
    ],
)
def test_which_multi_mode_stores_are_shared(over: dict[str, object], refused: bool):
    s = settings(replica_mode="multi", **MEMORY_ON, **over)
    assert (replica_refusal(s) is not None) is refused


def serve(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`desktopmate serve` with memory on (an embedder configured), no MongoDB or memory
    settings from this machine's environment, and ``env``: it is expected to refuse."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB", "MEMORY_"))}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env=clean
        | {"PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path / "data"), "STT_ENABLED": "false"}
        | {"LLM_BASE_URL": "http://127.0.0.1:9/v1"}
        | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_multi_mode_on_embedded_stores(tmp_path: Path):
    """The real command line: exit 2 with the reasons, before anything listens."""
    proc = serve(tmp_path, {"REPLICA_MODE": "multi"})
    assert proc.returncode == 2, proc.stderr
    assert "Refusing to start with REPLICA_MODE=multi" in proc.stderr
    assert "set MONGODB_URI" in proc.stderr and "set MEMORY_QDRANT_URL" in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing was created on the way out


@pytest.mark.parametrize(
    ("store", "env", "said"),
    [
        ("pgvector", {}, "MEMORY_VECTOR_STORE=pgvector needs MEMORY_PGVECTOR_URL"),
        ("chroma", {}, "MEMORY_VECTOR_STORE=chroma needs MEMORY_CHROMA_URL"),
        ("chroma", {"MEMORY_CHROMA_URL": "https://c:8000"}, "must be an http:// URL"),
    ],
)
def test_serve_refuses_a_vector_store_without_its_server(
    tmp_path: Path, store: str, env: dict[str, str], said: str
):
    """On one machine too: memory could never start (it would retry a setting forever), so
    exit 2 with what to set, before anything is created."""
    proc = serve(tmp_path, {"MEMORY_VECTOR_STORE": store} | env)
    assert proc.returncode == 2, proc.stderr
    assert said in proc.stderr and "MEMORY_ENABLED=false" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_serve_names_a_bad_setting_instead_of_a_traceback(tmp_path: Path):
    """A mistyped value (REPLICA_MODE=Multi, a word for a number): exit 2, each setting by
    its environment name with what it should be, no traceback and no value echoed."""
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env=os.environ
        | {"PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path / "data")}
        | {"REPLICA_MODE": "Multi", "STT_TIMEOUT_S": "soon", "LLM_API_KEY": "sk-secret"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "REPLICA_MODE: Input should be 'single' or 'multi'" in proc.stderr
    assert "STT_TIMEOUT_S: Input should be a valid number" in proc.stderr
    assert "Traceback" not in proc.stderr and "Multi" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_mem0_accepts_each_vector_store_config(tmp_path: Path):
    """mem0's own config model validates what we build for every store."""
    from mem0.configs.base import MemoryConfig

    base = {"data_dir": tmp_path, **MEMORY_ON}
    embedded = MemoryConfig(**mem0_config(settings(**base))).vector_store
    assert embedded.provider == "qdrant" and embedded.config.path == str(tmp_path / "qdrant")
    assert embedded.config.url is None

    server = MemoryConfig(
        **mem0_config(settings(**base, memory_qdrant_url="http://qdrant:6333"))
    ).vector_store
    assert server.config.url == "http://qdrant:6333" and server.config.api_key is None
    keyed = MemoryConfig(
        **mem0_config(
            settings(**base, memory_qdrant_url="https://q.example", memory_qdrant_api_key="k")
        )
    ).vector_store
    assert keyed.config.api_key == "k"

    pg = MemoryConfig(
        **mem0_config(
            settings(
                **base,
                memory_vector_store="pgvector",
                memory_pgvector_url="postgresql://u:p@pg:5432/db",
                memory_collection="mems",
            )
        )
    ).vector_store
    assert pg.provider == "pgvector"
    assert pg.config.connection_string == "postgresql://u:p@pg:5432/db"
    assert pg.config.collection_name == "mems"

    chroma = MemoryConfig(
        **mem0_config(
            settings(**base, memory_vector_store="chroma", memory_chroma_url="http://ch:8111")
        )
    ).vector_store
    assert chroma.provider == "chroma"
    assert (chroma.config.host, chroma.config.port) == ("ch", 8111)
    assert chroma.config.collection_name == "desktopmate_memories"
    plain = mem0_config(
        settings(**base, memory_vector_store="chroma", memory_chroma_url="http://c")
    )
    assert plain["vector_store"]["config"]["port"] == 8000  # Chroma's own port


async def test_memory_with_a_qdrant_url_talks_to_that_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A Qdrant URL means the server, never the embedded store: with nothing listening
    there memory reports the connection error and no local Qdrant folder appears."""
    monkeypatch.setenv("MEM0_TELEMETRY", "False")
    monkeypatch.setenv("MEM0_DIR", str(tmp_path / "mem0"))
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = SQLiteStore(tmp_path)
    await store.open()
    memory = LongTermMemory(
        settings(data_dir=tmp_path, memory_qdrant_url=f"http://127.0.0.1:{port}", **MEMORY_ON),
        store,
    )
    await memory.start()
    try:
        assert memory.status == "error", memory.detail
        assert "refused" in memory.detail.lower() or "connect" in memory.detail.lower()
        assert not (tmp_path / "qdrant").exists()
    finally:
        await memory.close()
        await store.close()
