"""Long-term memory for real: mem0 with embedded Qdrant (one folder per test), embeddings
and extraction from the fake OpenAI server, the vocabulary in a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.agent.memory import LongTermMemory, MemoryNotFound, MemoryUnavailable
from server.cli import main as cli
from server.config import Settings
from server.store import SQLiteStore
from tests.fakes.openai_server import FakeOpenAI


def settings_for(tmp: Path, fake: FakeOpenAI, **over: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp / "data",
        llm_base_url=fake.base_url,
        llm_api_key="k",
        llm_model="fake-model",
        embed_dims=fake.dims,
        **over,
    )


async def open_memory(settings: Settings) -> tuple[LongTermMemory, SQLiteStore]:
    store = SQLiteStore(settings.data_dir)
    await store.open()
    mem = LongTermMemory(settings, store)
    await mem.start()
    assert mem.status == "ready", mem.detail
    return mem, store


@pytest.fixture
async def memory(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[LongTermMemory]:
    mem, store = await open_memory(settings_for(tmp_path, fake_openai))
    yield mem
    await mem.close()
    await store.close()


def utc(stamp: str | None) -> datetime:
    assert stamp is not None
    t = datetime.fromisoformat(stamp)
    assert t.utcoffset() == timedelta(0), stamp
    return t


def query_embeddings(fake: FakeOpenAI, query: str) -> int:
    return sum(r["inputs"] == [query] for r in fake.requests.of_kind("embeddings"))


async def test_tool_memories_carry_category_source_and_utc_times(memory: LongTermMemory) -> None:
    before = datetime.now(UTC)
    mid = await memory.add("ann", "Ann lives in Seoul", "Location")
    hit = await memory.find("ann", mid)
    assert (hit.memory, hit.category, hit.source, hit.tier) == (
        "Ann lives in Seoul",
        "location",
        "tool",
        "fresh",
    )
    assert before - timedelta(seconds=1) <= utc(hit.created_at) == utc(hit.updated_at)
    updated = await memory.update("ann", mid, "Ann lives in Busan", "location")
    assert updated.memory == "Ann lives in Busan" and utc(updated.updated_at) > utc(hit.updated_at)
    assert updated.created_at == hit.created_at
    with pytest.raises(MemoryNotFound):  # another user's id looks like no id at all
        await memory.find("bob", mid)
    with pytest.raises(MemoryNotFound):
        await memory.delete("bob", mid)
    assert (await memory.find("ann", mid)).memory == "Ann lives in Busan"


async def test_background_extraction_stamps_the_same_metadata(memory: LongTermMemory) -> None:
    memory.add_background(
        "cid",
        [
            {"role": "user", "content": "My sister is called Mina."},
            {"role": "assistant", "content": "Nice!"},
        ],
    )
    await memory.drain()
    (hit,) = await memory.list("cid", 10)
    assert hit.memory == "My sister is called Mina."
    assert (hit.category, hit.source) == ("general", "auto")
    assert utc(hit.created_at) and utc(hit.updated_at)


async def test_unknown_category_joins_the_vocabulary_and_bad_ones_are_refused(
    memory: LongTermMemory,
) -> None:
    from server.agent.memory import CategoryRefused

    await memory.add("dan", "Dan's cat is Nabi", "Pets")
    assert "pets" in await memory.vocabulary.get_all_terms()
    with pytest.raises(CategoryRefused):
        await memory.add("dan", "x", "??")
    assert [h.memory for h in await memory.search("dan", "cat Nabi", category="pets")] == [
        "Dan's cat is Nabi"
    ]
    assert await memory.search("dan", "cat Nabi", category="work") == []


async def test_cleanup_moves_a_31_day_old_memory_to_old_and_probing_reaches_it(
    memory: LongTermMemory, fake_openai: FakeOpenAI
) -> None:
    old_time = datetime.now(UTC) - timedelta(days=31)
    old_id = await memory.add(
        "eve", "Eve drinks green tea daily", "preference", created_at=old_time
    )
    for text in ("Eve drinks coffee at work", "Eve drinks water at the gym"):
        await memory.add("eve", text, "preference")
    await memory.add("zed", "Zed drinks tea too", "preference", created_at=old_time)
    assert await memory.move_older_than(30) == 2  # Eve's and Zed's old ones
    moved = await memory.find("eve", old_id)
    assert moved.tier == "old" and utc(moved.updated_at) == old_time  # times survive a move
    assert {h.tier for h in await memory.list("eve", 10)} == {"fresh", "old"}
    # fresh alone fills a limit of 2: old is never asked (one query embedding, not two)
    q = "what does Eve drink"
    hits = await memory.search("eve", q, limit=2)
    assert [h.tier for h in hits] == ["fresh", "fresh"] and query_embeddings(fake_openai, q) == 1
    # a limit of 3 needs old too: probed after fresh, and only Eve's memory comes back
    q2 = "what does Eve drink daily"
    hits = await memory.search("eve", q2, limit=3)
    assert [h.tier for h in hits] == ["fresh", "fresh", "old"]
    assert hits[-1].memory == "Eve drinks green tea daily"
    assert query_embeddings(fake_openai, q2) == 2
    # updating an old memory brings it back to fresh, same id
    back = await memory.update("eve", old_id, "Eve drinks black tea daily")
    assert back.tier == "fresh" and back.id == old_id
    assert await memory.move_older_than(30) == 0


async def test_delete_all_erases_only_the_users_memories_in_both_tiers(
    memory: LongTermMemory,
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=40)
    await memory.add("fay", "Fay plays chess", "hobby", created_at=long_ago)
    await memory.add("fay", "Fay plays go", "hobby")
    await memory.add("gil", "Gil plays chess", "hobby")
    await memory.move_older_than(30)
    assert await memory.delete_all("fay") == 2
    assert await memory.list("fay", 10) == []
    assert [h.memory for h in await memory.list("gil", 10)] == ["Gil plays chess"]


async def test_tiers_off_searches_one_collection_and_cleanup_refuses(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    mem, store = await open_memory(settings_for(tmp_path, fake_openai, memory_tiers=False))
    try:
        assert not mem.tiered
        await mem.add("hal", "Hal likes jazz", "preference")
        q = "does Hal like jazz"
        assert len(await mem.search("hal", q, limit=5)) == 1
        assert query_embeddings(fake_openai, q) == 1
        with pytest.raises(MemoryUnavailable, match="MEMORY_TIERS"):
            await mem.move_older_than(30)
    finally:
        await mem.close()
        await store.close()
    assert not (tmp_path / "data" / "qdrant_old").exists()


async def test_cli_cleanup_moves_old_memories(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    settings = settings_for(tmp_path, fake_openai)
    mem, store = await open_memory(settings)
    mid = await mem.add(
        "ivy", "Ivy moved to Jeju", "location", created_at=datetime.now(UTC) - timedelta(days=31)
    )
    await mem.add("ivy", "Ivy likes hiking", "hobby")
    await mem.close()
    await store.close()
    env = {
        "DATA_DIR": str(settings.data_dir),
        "LLM_BASE_URL": fake_openai.base_url,
        "LLM_API_KEY": "k",
        "EMBED_DIMS": str(fake_openai.dims),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)  # no stray .env
    import asyncio

    assert await asyncio.to_thread(cli, ["memory", "cleanup", "--days", "30"]) == 0
    assert "moved 1 memories not updated for 30 days" in capsys.readouterr().out
    mem, store = await open_memory(settings)
    try:
        assert (await mem.find("ivy", mid)).tier == "old"
    finally:
        await mem.close()
        await store.close()
