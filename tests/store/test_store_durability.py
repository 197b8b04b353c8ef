"""Store contract for durability and crash recovery, on both adapters (conftest ``store``):
caller-minted message ids, settling an interrupted reply, and live-session ownership."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from server.hub.liveness import SessionLiveness
from server.store import MongoStore, SQLiteStore, Store, new_id, utcnow

A, B = "user-a", "user-b"


async def test_add_message_keeps_a_caller_minted_id(store: Store) -> None:
    s = await store.create_session(A, "emma")
    mid = new_id()
    m = await store.add_message(A, s.id, "emma", "user", "hi", message_id=mid)
    other = await store.add_message(A, s.id, "emma", "assistant", "hello")
    assert m.id == mid and other.id not in ("", mid)
    assert [x.id for x in await store.list_messages(A, s.id)] == [mid, other.id]


async def test_settle_message_replaces_or_deletes_only_the_owners(store: Store) -> None:
    s = await store.create_session(A, "emma")
    u = await store.add_message(A, s.id, "emma", "user", "tell me a story")
    r = await store.add_message(
        A, s.id, "emma", "assistant", "Once upon a time there", interrupted=True
    )
    assert await store.settle_message(B, r.id, "stolen") is False
    assert await store.settle_message(A, r.id, "Once upon") is True
    (_, settled) = await store.list_messages(A, s.id)
    assert settled.content == "Once upon" and settled.interrupted
    assert settled.created_at == r.created_at and settled.id == r.id  # same place in order
    assert await store.settle_message(A, r.id, "") is True  # nothing heard: no reply stored
    assert [m.id for m in await store.list_messages(A, s.id)] == [u.id]
    assert await store.settle_message(A, r.id, "again") is False
    # a reply that completed, then was cut where the client stopped playing it (OpenAI
    # Realtime's conversation.item.truncate after response.done), is interrupted now
    done = await store.add_message(A, s.id, "emma", "assistant", "The end of the story.")
    assert await store.settle_message(A, done.id, "The end") is True
    (*_, cut) = await store.list_messages(A, s.id)
    assert (cut.id, cut.content, cut.interrupted) == (done.id, "The end", True)


async def test_claim_heartbeat_and_recover_sessions(store: Store) -> None:
    mine = await store.create_session(A, "emma")
    theirs = await store.create_session(B, "emma")
    rest = await store.create_session(A, "emma")  # a REST chat thread: never claimed
    paused = await store.create_session(B, "emma")
    assert await store.claim_session(A, mine.id, "host-1")
    assert await store.claim_session(B, theirs.id, "host-2")
    assert await store.claim_session(B, paused.id, "host-1")
    await store.update_session(B, paused.id, status="paused")
    assert await store.claim_session(B, mine.id, "host-1") is False  # not B's session

    assert await store.heartbeat_sessions("host-1") == 1  # the paused one is not live
    assert await store.heartbeat_sessions("nobody") == 0

    # host-1 restarts: it recovers its own live session, nobody else's
    long_ago = utcnow() - timedelta(hours=1)
    assert await store.recover_sessions(long_ago, owner="host-1") == [mine.id]
    status = {
        s.id: s.status for s in [*await store.list_sessions(A), *await store.list_sessions(B)]
    }
    assert status == {
        mine.id: "interrupted",
        theirs.id: "active",
        rest.id: "active",
        paused.id: "paused",
    }
    assert await store.recover_sessions(long_ago, owner="host-1") == []  # idempotent

    # host-2 stops heartbeating: once its heartbeat is older than the cut-off, anyone recovers
    assert await store.recover_sessions(utcnow() - timedelta(minutes=5)) == []
    assert await store.recover_sessions(utcnow() + timedelta(seconds=1)) == [theirs.id]
    rec = await store.get_session(B, theirs.id)
    assert rec is not None and rec.status == "interrupted"

    # resuming claims it again: active, served by the new owner
    assert await store.claim_session(B, theirs.id, "host-3")
    rec = await store.get_session(B, theirs.id)
    assert rec is not None and rec.status == "active"
    assert await store.recover_sessions(long_ago, owner="host-2") == []


async def test_beat_instance_reports_another_process_with_the_same_instance_id(
    store: Store,
) -> None:
    assert await store.beat_instance("host-1", "run-1") is None  # first run
    assert await store.beat_instance("host-1", "run-1") is None  # its own beats
    assert await store.beat_instance("host-2", "run-9") is None  # another id: its own
    assert await store.beat_instance("host-1", "run-2") == "run-1"  # a restart, or a twin
    assert await store.beat_instance("host-1", "run-1") == "run-2"  # a twin: both hear it
    assert await store.beat_instance("host-1", "run-1") is None  # the other stopped beating


async def test_sessions_owned_elsewhere_are_those_another_process_claimed(store: Store) -> None:
    s1 = await store.create_session(A, "emma")
    s2 = await store.create_session(B, "emma")
    rest = await store.create_session(A, "emma")  # never claimed (a REST chat thread)
    assert await store.claim_session(A, s1.id, "host-1")
    assert await store.claim_session(B, s2.id, "host-1")
    mine = [s1.id, s2.id, rest.id]
    assert await store.sessions_owned_elsewhere(mine, "host-1") == []
    assert await store.sessions_owned_elsewhere([], "host-1") == []
    assert await store.claim_session(B, s2.id, "host-2")  # resumed on another replica
    assert await store.sessions_owned_elsewhere(mine, "host-1") == [s2.id]
    assert await store.sessions_owned_elsewhere(mine, "host-2") == [s1.id]
    assert await store.sessions_owned_elsewhere(["no-such-id"], "host-1") == []


async def test_sqlite_adds_ownership_columns_to_an_old_file(tmp_path: Path) -> None:
    """A database created before sessions had an owner opens, and recovery works on it."""
    old = sqlite3.connect(tmp_path / "desktopmate.sqlite3")
    old.execute(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
        "persona_id TEXT NOT NULL, thread_id TEXT NOT NULL, status TEXT NOT NULL, "
        "settings TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT)"
    )
    old.execute(
        "INSERT INTO sessions VALUES ('s1', 'a', 'emma', 's1', 'active', '{}', "
        "'2026-01-01T00:00:00.000000Z', NULL)"
    )
    old.commit()
    old.close()
    store = SQLiteStore(tmp_path)
    await store.open()
    try:
        rec = await store.get_session("a", "s1")
        assert rec is not None and rec.status == "active"
        assert await store.recover_sessions(utcnow(), owner="me") == []  # never claimed
        assert await store.claim_session("a", "s1", "me")
        assert await store.recover_sessions(utcnow() - timedelta(hours=1), owner="me") == ["s1"]
    finally:
        await store.close()


@pytest.mark.parametrize("level", ["FULL", "NORMAL"])
async def test_sqlite_synchronous_level_is_applied(tmp_path: Path, level: str) -> None:
    store = SQLiteStore(tmp_path, level)  # type: ignore[arg-type]
    await store.open()
    try:
        assert store._db is not None
        (row,) = await store._db.execute_fetchall("PRAGMA synchronous")
        assert row[0] == {"FULL": 2, "NORMAL": 1}[level]
        (mode,) = await store._db.execute_fetchall("PRAGMA journal_mode")
        assert mode[0] == "wal"
    finally:
        await store.close()
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path, "OFF")  # type: ignore[arg-type]


async def test_mongo_writes_are_acknowledged_whatever_the_uri_says(mongo_uri: str) -> None:
    """w=0 in the URI would make every write fire-and-forget; the store overrides it."""
    sep = "&" if "?" in mongo_uri else "/?"
    store = MongoStore(f"{mongo_uri.rstrip('/')}{sep}w=0", f"t_{new_id()}")
    await store.open()
    try:
        assert store._client is not None and store._sync_client is not None
        for client in (store._client, store._sync_client):
            wc = client.write_concern
            assert wc.acknowledged and wc.document == {"w": "majority", "j": True}
        s = await store.create_session(A, "emma")
        m = await store.add_message(A, s.id, "emma", "user", "stored")
        raw: AsyncMongoClient = AsyncMongoClient(mongo_uri)
        try:
            doc = await raw[store.db_name].messages.find_one({"_id": m.id})
        finally:
            await raw.close()
        assert doc is not None and doc["content"] == "stored"
    finally:
        await store.close()


async def test_liveness_recovers_its_own_at_start_and_silent_replicas_later(store: Store) -> None:
    """SessionLiveness on a real store: at start the sessions this owner served before are
    recovered; while it runs, its own stay fresh and a silent replica's are recovered."""
    before_crash = await store.create_session(A, "emma")
    await store.claim_session(A, before_crash.id, "me")
    other_replica = await store.create_session(B, "emma")
    await store.claim_session(B, other_replica.id, "replica-2")

    live = SessionLiveness(store, "me", heartbeat_s=0.1)
    assert await live.start() == [before_crash.id]
    try:
        serving = await store.create_session(A, "emma")
        await store.claim_session(A, serving.id, "me")
        for _ in range(100):  # replica-2 never beats: recovered after 3 missed beats
            rec = await store.get_session(B, other_replica.id)
            assert rec is not None
            if rec.status == "interrupted":
                break
            await asyncio.sleep(0.05)
        assert rec.status == "interrupted"
        mine = await store.get_session(A, serving.id)
        assert mine is not None and mine.status == "active"  # our heartbeat kept it
    finally:
        await live.close()


async def test_sqlite_concurrent_writes_share_commits_and_each_is_stored_when_it_returns(
    tmp_path: Path,
) -> None:
    """Group commit (SQLiteStore._write): many writers at once, one failing among them.
    Each write that returned is visible to another connection at that moment (committed,
    not just written); the failing one is undone alone, the others are all stored."""
    store = SQLiteStore(tmp_path)
    await store.open()
    try:
        s = await store.create_session(A, "emma")
        seen = sqlite3.connect(tmp_path / "desktopmate.sqlite3")

        def committed(mid: str) -> bool:
            row = seen.execute("SELECT 1 FROM messages WHERE id = ?", (mid,)).fetchone()
            return row is not None

        first = await store.add_message(A, s.id, "emma", "user", "first")

        async def write(n: int) -> str:
            mid = first.id if n == 7 else new_id()  # 7: a duplicate id fails in the INSERT
            await store.add_message(A, s.id, "emma", "user", f"line {n}", message_id=mid)
            assert committed(mid)  # acknowledged means stored
            return mid

        results = await asyncio.gather(*(write(n) for n in range(40)), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(failed) == 1 and isinstance(failed[0], sqlite3.IntegrityError)
        stored = await store.list_messages(A, s.id)
        assert {m.id for m in stored} == {first.id} | {r for r in results if isinstance(r, str)}
        assert len(stored) == 40 and stored[0].content == "first"  # 39 new, the first intact
        seen.close()
    finally:
        await store.close()
