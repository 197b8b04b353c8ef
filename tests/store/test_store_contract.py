"""One contract suite, run against both adapters (see conftest ``store``)."""

from __future__ import annotations

import asyncio
import operator
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pymongo import AsyncMongoClient

from server.store import MongoStore, Sample, SQLiteStore, Store, make_store, new_id
from server.store.base import ReminderRecord, Repeat, utcnow

A, B = "user-a", "user-b"


def _aware_utc(dt: datetime) -> bool:
    return dt.tzinfo is not None and dt.utcoffset() == timedelta(0)


# -- lifecycle --------------------------------------------------------------------


async def test_ping_and_open_is_idempotent(store: Store) -> None:
    assert await store.ping() is True
    await store.open()  # second open must not reset or break anything
    assert await store.ping() is True


async def test_ping_false_when_closed(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path)
    assert await s.ping() is False
    await s.open()
    assert await s.ping() is True
    await s.close()
    assert await s.ping() is False


def test_make_store_picks_adapter(tmp_path: Path) -> None:
    sqlite = make_store(data_dir=tmp_path, mongodb_uri=None)
    assert isinstance(sqlite, SQLiteStore)
    assert sqlite.db_path.parent == tmp_path
    mongo = make_store(data_dir=tmp_path, mongodb_uri="mongodb://127.0.0.1:1", mongodb_db="x")
    assert isinstance(mongo, MongoStore)
    assert mongo.db_name == "x"


# -- sessions ---------------------------------------------------------------------


async def test_create_get_session(store: Store) -> None:
    await store.ensure_user(A)
    await store.ensure_user(A)  # idempotent
    s = await store.create_session(A, "seoa", {"voice": "ko", "temperature": 0.7})
    assert s.thread_id == s.id
    assert s.status == "active" and s.ended_at is None
    assert _aware_utc(s.started_at)
    assert abs(s.started_at - datetime.now(UTC)) < timedelta(seconds=5)

    got = await store.get_session(A, s.id)
    assert got == s
    assert got is not None and _aware_utc(got.started_at)
    assert await store.get_session(A, "missing") is None


async def test_create_session_default_settings(store: Store) -> None:
    s = await store.create_session(A, "seoa")
    assert s.settings == {}
    got = await store.get_session(A, s.id)
    assert got is not None and got.settings == {}


async def test_list_sessions_newest_first_with_paging(store: Store) -> None:
    ids = [(await store.create_session(A, "p")).id for _ in range(4)]
    listed = await store.list_sessions(A)
    assert [s.id for s in listed] == ids[::-1]
    assert [s.id for s in await store.list_sessions(A, limit=2)] == [ids[3], ids[2]]
    assert [s.id for s in await store.list_sessions(A, limit=2, offset=2)] == [ids[1], ids[0]]
    assert await store.list_sessions(A, offset=10) == []


async def test_update_session(store: Store) -> None:
    s = await store.create_session(A, "p", {"a": 1})
    assert await store.update_session(A, s.id, status="paused") is True
    got = await store.get_session(A, s.id)
    assert got is not None and got.status == "paused" and got.settings == {"a": 1}

    ended = datetime.now(UTC)
    assert await store.update_session(A, s.id, status="ended", settings={"b": 2}, ended_at=ended)
    got = await store.get_session(A, s.id)
    assert got is not None
    assert got.status == "ended"
    assert got.settings == {"b": 2}  # settings are replaced, not merged
    assert got.ended_at is not None and _aware_utc(got.ended_at)
    # MongoDB keeps milliseconds only.
    assert abs(got.ended_at - ended) < timedelta(milliseconds=1)
    assert got.started_at == s.started_at

    # No fields: just tells whether it exists.
    assert await store.update_session(A, s.id) is True
    assert await store.update_session(A, "missing") is False
    assert await store.update_session(A, "missing", status="ended") is False


async def test_naive_ended_at_is_taken_as_utc(store: Store) -> None:
    s = await store.create_session(A, "p")
    naive = datetime(2025, 1, 2, 3, 4, 5, 678000)
    assert await store.update_session(A, s.id, ended_at=naive)
    got = await store.get_session(A, s.id)
    assert got is not None and got.ended_at == naive.replace(tzinfo=UTC)


# -- messages ---------------------------------------------------------------------


async def test_messages_round_trip(store: Store) -> None:
    s = await store.create_session(A, "seoa")
    m1 = await store.add_message(A, s.id, "seoa", "user", "안녕하세요")
    timings = {"ttft_ms": 120.5, "ttfa_ms": 340, "total_ms": 900, "nested": {"x": [1, 2]}}
    m2 = await store.add_message(
        A, s.id, "seoa", "assistant", "반가워요", timings=timings, interrupted=True
    )
    assert m1.timings is None and m1.interrupted is False
    assert m2.timings == timings and m2.interrupted is True
    assert m1.created_at < m2.created_at

    listed = await store.list_messages(A, s.id)
    assert listed == [m1, m2]
    assert all(_aware_utc(m.created_at) for m in listed)
    assert listed[1].timings == timings
    assert listed[1].interrupted is True
    assert listed[0].content == "안녕하세요"


async def test_messages_order_and_pagination(store: Store) -> None:
    s = await store.create_session(A, "p")
    other = await store.create_session(A, "p")
    for i in range(6):
        role = "user" if i % 2 == 0 else "assistant"
        await store.add_message(A, s.id, "p", role, f"m{i}")
    await store.add_message(A, other.id, "p", "user", "elsewhere")

    assert [m.content for m in await store.list_messages(A, s.id)] == [f"m{i}" for i in range(6)]
    page = await store.list_messages(A, s.id, limit=2, offset=2)
    assert [m.content for m in page] == ["m2", "m3"]
    assert [m.content for m in await store.list_messages(A, s.id, limit=10, offset=5)] == ["m5"]
    assert await store.list_messages(A, s.id, offset=6) == []
    assert [m.content for m in await store.list_messages(A, other.id)] == ["elsewhere"]


async def test_delete_message_removes_only_this_users_message_in_that_session(
    store: Store,
) -> None:
    """conversation.item.delete of any item: a user's line, a system note, a reply."""
    s = await store.create_session(A, "p")
    other = await store.create_session(A, "p")
    user = await store.add_message(A, s.id, "p", "user", "forget this")
    note = await store.add_message(A, s.id, "p", "system", "a note")
    reply = await store.add_message(A, s.id, "p", "assistant", "sure")
    await store.create_session(B, "p")
    assert await store.delete_message(B, s.id, user.id) is False  # another user's
    assert await store.delete_message(A, other.id, user.id) is False  # another session's
    assert [m.id for m in await store.list_messages(A, s.id)] == [user.id, note.id, reply.id]
    assert await store.delete_message(A, s.id, user.id) is True
    assert await store.delete_message(A, s.id, user.id) is False  # already gone
    assert await store.delete_message(A, s.id, note.id) is True
    assert await store.list_messages(A, s.id) == [reply]
    assert await store.count_messages(A, role="user") == 0


async def test_count_messages_filters(store: Store) -> None:
    s = await store.create_session(A, "seoa")
    await store.add_message(A, s.id, "seoa", "user", "1")
    await store.add_message(A, s.id, "seoa", "assistant", "2")
    await store.add_message(A, s.id, "seoa", "user", "3")
    await store.add_message(A, s.id, "mina", "user", "4")
    await store.add_message(B, "b-session", "seoa", "user", "5")

    assert await store.count_messages(A) == 4
    assert await store.count_messages(A, persona_id="seoa") == 3
    assert await store.count_messages(A, role="user") == 3
    assert await store.count_messages(A, persona_id="seoa", role="user") == 2
    assert await store.count_messages(A, persona_id="mina", role="assistant") == 0
    assert await store.count_messages(B) == 1
    assert await store.count_messages("nobody") == 0


async def test_concurrent_writes(store: Store) -> None:
    """The hub saves the user message in a task while the reply streams: writes overlap."""
    s = await store.create_session(A, "p")
    await asyncio.gather(
        *(store.add_message(A, s.id, "p", "user", f"c{i}") for i in range(10)),
        *(store.incr_usage(A, {"api_calls": 1, "input_tokens": i}) for i in range(10)),
    )
    listed = await store.list_messages(A, s.id)
    assert sorted(m.content for m in listed) == sorted(f"c{i}" for i in range(10))
    assert [m.created_at for m in listed] == sorted(m.created_at for m in listed)
    assert await store.get_usage(A) == {"api_calls": 10, "input_tokens": 45}


# -- samples ----------------------------------------------------------------------


async def test_samples_ordering_and_kind_filter(store: Store) -> None:
    s = await store.create_session(A, "p")
    await store.add_samples(
        A,
        s.id,
        [
            Sample("face", 300, {"emotion": "happy", "blink": 0.1}),
            Sample("voice", 100, {"pitch_hz": 180.5}),
            Sample("face", 200, {"emotion": "neutral"}),
        ],
    )
    await store.add_samples(A, s.id, [Sample("face", 50), Sample("voice", 400, {"v": [1, 2]})])
    await store.add_samples(A, s.id, [])  # no-op

    all_ = await store.list_samples(A, s.id)
    assert [x.t_ms for x in all_] == [50, 100, 200, 300, 400]
    assert all_[0] == Sample("face", 50, {})
    assert all_[1] == Sample("voice", 100, {"pitch_hz": 180.5})
    faces = await store.list_samples(A, s.id, kind="face")
    assert [(x.kind, x.t_ms) for x in faces] == [("face", 50), ("face", 200), ("face", 300)]
    assert faces[2].data == {"emotion": "happy", "blink": 0.1}
    assert [x.t_ms for x in await store.list_samples(A, s.id, limit=2)] == [50, 100]
    assert await store.list_samples(A, s.id, kind="gaze") == []
    assert await store.list_samples(A, "other-session") == []


# -- usage and reports ------------------------------------------------------------


async def test_user_settings_are_saved_per_user_and_replaced(store: Store) -> None:
    assert await store.get_user_settings(A) == {}
    await store.put_user_settings(A, {"persona": "emma", "temperature": 0.3, "voice": None})
    await store.put_user_settings(B, {"output_audio": "none"})
    assert await store.get_user_settings(A) == {
        "persona": "emma",
        "temperature": 0.3,
        "voice": None,
    }
    await store.put_user_settings(A, {"instructions": "말 짧게", "instructions_mode": "replace"})
    assert await store.get_user_settings(A) == {
        "instructions": "말 짧게",
        "instructions_mode": "replace",
    }
    assert await store.get_user_settings(B) == {"output_audio": "none"}


async def test_history_previews_search_and_delete(store: Store) -> None:
    s1 = (await store.create_session(A, "p1")).id
    s2 = (await store.create_session(A, "p1")).id
    empty = (await store.create_session(A, "p1")).id
    theirs = (await store.create_session(B, "p1")).id
    await store.add_message(A, s1, "p1", "assistant", "Welcome back!")
    await store.add_message(A, s1, "p1", "user", "Tell me about 100% Busan_trips")
    await store.add_message(A, s1, "p1", "user", "and the beach")
    await store.add_message(A, s2, "p1", "user", "what about SEOUL?")
    await store.add_message(B, theirs, "p1", "user", "busan from B")
    await store.add_samples(A, s1, [Sample("face", 1, {"x": 1})])
    await store.put_report(A, s1, {"v": 1})

    previews = await store.session_previews(A, [s1, s2, empty, theirs])
    assert previews == {s1: ("Tell me about 100% Busan_trips", 3), s2: ("what about SEOUL?", 1)}
    assert [r.id for r in await store.search_sessions(A, "busan")] == [s1]
    assert [r.id for r in await store.search_sessions(A, "seoul")] == [s2]
    assert [r.id for r in await store.search_sessions(A, "100%")] == [s1]  # % is literal
    assert await store.search_sessions(A, "1_0") == []  # so is _
    assert await store.search_sessions(A, "from B") == []  # only the caller's

    assert await store.delete_session(B, s1) is False  # not theirs to delete
    assert await store.delete_session(A, s1) is True
    assert await store.get_session(A, s1) is None
    assert await store.list_messages(A, s1) == [] and await store.list_samples(A, s1) == []
    assert await store.get_report(A, s1) is None
    assert await store.delete_session(A, s1) is False
    assert [m.content for m in await store.list_messages(B, theirs)] == ["busan from B"]


async def test_usage_lands_in_todays_bucket_and_reply_timings_are_listed(store: Store) -> None:
    today = utcnow().date().isoformat()
    await store.incr_usage(A, {"llm_calls": 1, "output_tokens": 40})
    await store.incr_usage(A, {"llm_calls": 1, "output_tokens": 2})
    await store.incr_usage(B, {"llm_calls": 5})
    assert await store.get_usage_daily(A, today, today) == {
        today: {"llm_calls": 2, "output_tokens": 42}
    }
    assert await store.get_usage_daily(A, "2000-01-01", "2000-12-31") == {}
    assert await store.get_usage_daily(B, today, today) == {today: {"llm_calls": 5}}

    sid = (await store.create_session(A, "p1")).id
    await store.add_message(A, sid, "p1", "user", "hi")
    await store.add_message(A, sid, "p1", "assistant", "yo", timings={"ttft_ms": 120})
    await store.add_message(A, sid, "p1", "assistant", "no timings")
    other = (await store.create_session(B, "p1")).id
    await store.add_message(B, other, "p1", "assistant", "b", timings={"ttft_ms": 9})
    now = utcnow()
    rows = await store.list_reply_timings(A, now - timedelta(hours=1), now + timedelta(hours=1))
    assert [(p, t) for _, p, t in rows] == [("p1", {"ttft_ms": 120})]
    assert rows[0][0].tzinfo is not None
    assert (
        await store.list_reply_timings(A, now + timedelta(hours=1), now + timedelta(hours=2)) == []
    )


async def test_usage_increments_accumulate(store: Store) -> None:
    assert await store.get_usage(A) == {}
    await store.incr_usage(A, {"api_calls": 1, "input_tokens": 120})
    await store.incr_usage(A, {"api_calls": 1, "output_tokens": 40})
    await store.incr_usage(A, {"api_calls": 3, "input_tokens": 5, "cache_hits": 0})
    await store.incr_usage(A, {})
    await store.incr_usage(B, {"api_calls": 7})
    assert await store.get_usage(A) == {
        "api_calls": 5,
        "input_tokens": 125,
        "output_tokens": 40,
        "cache_hits": 0,
    }
    assert await store.get_usage(B) == {"api_calls": 7}


async def test_usage_rejects_names_mongodb_cannot_store(store: Store) -> None:
    for bad in ("a.b", "$inc", ""):
        with pytest.raises(ValueError, match="counter name"):
            await store.incr_usage(A, {"ok": 1, bad: 1})
    assert await store.get_usage(A) == {}  # nothing half-applied


async def test_a_reply_and_its_usage_counters_are_stored_together(store: Store) -> None:
    today = utcnow().date().isoformat()
    sid = (await store.create_session(A, "p1")).id
    counters = {"llm_calls": 1, "output_tokens": 40}
    rec = await store.add_reply(
        A, sid, "p1", "hello", usage=counters, timings={"ttft_ms": 9}, interrupted=True,
        message_id="m1",
    )  # fmt: skip
    assert rec is not None and (rec.id, rec.role, rec.content) == ("m1", "assistant", "hello")
    (m,) = await store.list_messages(A, sid)
    assert (m.id, m.role, m.content, m.timings, m.interrupted) == (
        "m1", "assistant", "hello", {"ttft_ms": 9}, True,
    )  # fmt: skip
    # a silent plan: no empty reply, the turn is still counted
    assert await store.add_reply(A, sid, "p1", "", usage={"llm_calls": 1}) is None
    assert [x.id for x in await store.list_messages(A, sid)] == ["m1"]
    assert await store.get_usage(A) == {"llm_calls": 2, "output_tokens": 40}
    assert await store.get_usage_daily(A, today, today) == {
        today: {"llm_calls": 2, "output_tokens": 40}
    }
    with pytest.raises(ValueError, match="counter name"):
        await store.add_reply(A, sid, "p1", "half", usage={"ok": 1, "a.b": 1})
    assert [x.content for x in await store.list_messages(A, sid)] == ["hello"]  # nothing half
    assert await store.get_usage(A) == {"llm_calls": 2, "output_tokens": 40}
    assert await store.get_usage(B) == {}


async def test_reports_upsert(store: Store) -> None:
    s = await store.create_session(A, "p")
    assert await store.get_report(A, s.id) is None
    first: dict[str, Any] = {"engagement": 0.5, "summary": "짧은 대화", "gaze": {"on": 0.8}}
    await store.put_report(A, s.id, first)
    assert await store.get_report(A, s.id) == first
    second = {"engagement": 0.9, "timeline": [1, 2, 3]}
    await store.put_report(A, s.id, second)
    assert await store.get_report(A, s.id) == second  # replaced, not merged
    other = await store.create_session(A, "p")
    assert await store.get_report(A, other.id) is None


# -- reminders --------------------------------------------------------------------

DUE = datetime(2030, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)  # whole ms: exact on both


async def test_reminder_round_trip(store: Store) -> None:
    r = await store.add_reminder(A, "물 마시기", DUE)
    assert isinstance(r, ReminderRecord)
    assert r.user_id == A and r.text == "물 마시기"
    assert r.due_at == DUE and _aware_utc(r.due_at)
    assert r.status == "pending" and r.delivered_at is None
    assert _aware_utc(r.created_at)
    assert abs(r.created_at - datetime.now(UTC)) < timedelta(seconds=5)

    got = await store.get_reminder(A, r.id)
    assert got == r
    assert got is not None and _aware_utc(got.due_at) and _aware_utc(got.created_at)
    assert await store.get_reminder(A, "missing") is None


async def test_reminder_due_at_is_normalised_to_utc(store: Store) -> None:
    kst = timezone(timedelta(hours=9))
    local = await store.add_reminder(A, "kst", datetime(2030, 1, 1, 9, 0, tzinfo=kst))
    naive = await store.add_reminder(A, "naive", datetime(2030, 1, 1, 1, 0))  # taken as UTC
    fine = datetime(2030, 1, 1, 2, 0, 0, 123456, tzinfo=UTC)
    precise = await store.add_reminder(A, "us", fine)
    for r in (local, naive, precise):
        assert _aware_utc(r.due_at)
        assert await store.get_reminder(A, r.id) == r  # returned record == stored record
    assert local.due_at == datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    assert naive.due_at == datetime(2030, 1, 1, 1, 0, tzinfo=UTC)
    assert abs(precise.due_at - fine) < timedelta(milliseconds=1)  # MongoDB keeps ms
    assert [r.text for r in await store.list_reminders(A)] == ["kst", "naive", "us"]


async def test_list_reminders_order_status_and_limit(store: Store) -> None:
    late = await store.add_reminder(A, "late", DUE + timedelta(hours=2))
    tie1 = await store.add_reminder(A, "tie1", DUE + timedelta(hours=1))
    early = await store.add_reminder(A, "early", DUE)
    tie2 = await store.add_reminder(A, "tie2", DUE + timedelta(hours=1))  # created later
    await store.add_reminder(B, "B's", DUE - timedelta(hours=1))

    listed = await store.list_reminders(A)
    assert [r.text for r in listed] == ["early", "tie1", "tie2", "late"]
    assert listed[0] == early
    assert all(_aware_utc(r.due_at) and _aware_utc(r.created_at) for r in listed)
    assert [r.text for r in await store.list_reminders(A, limit=2)] == ["early", "tie1"]

    assert await store.close_reminder(A, tie1.id, "delivered") is True
    assert await store.close_reminder(A, late.id, "cancelled") is True
    assert [r.id for r in await store.list_reminders(A, status="pending")] == [early.id, tie2.id]
    assert [r.id for r in await store.list_reminders(A, status="pending", limit=1)] == [early.id]
    delivered = await store.list_reminders(A, status="delivered")
    assert [r.id for r in delivered] == [tie1.id] and delivered[0].status == "delivered"
    assert [r.id for r in await store.list_reminders(A, status="cancelled")] == [late.id]
    assert [r.text for r in await store.list_reminders(A)] == ["early", "tie1", "tie2", "late"]
    assert await store.list_reminders("nobody") == []


async def test_count_reminders_by_status(store: Store) -> None:
    rs = [await store.add_reminder(A, f"r{i}", DUE + timedelta(minutes=i)) for i in range(5)]
    await store.add_reminder(B, "B's", DUE)
    assert await store.close_reminder(A, rs[0].id, "delivered")
    assert await store.close_reminder(A, rs[1].id, "delivered")
    assert await store.close_reminder(A, rs[2].id, "cancelled")
    assert await store.count_reminders(A, "pending") == 2
    assert await store.count_reminders(A, "delivered") == 2
    assert await store.count_reminders(A, "cancelled") == 1
    assert await store.count_reminders(B, "pending") == 1
    assert await store.count_reminders(B, "delivered") == 0
    assert await store.count_reminders("nobody", "pending") == 0


async def test_close_reminder_only_once(store: Store) -> None:
    r = await store.add_reminder(A, "stretch", DUE)
    before = datetime.now(UTC)
    assert await store.close_reminder(A, r.id, "delivered") is True
    got = await store.get_reminder(A, r.id)
    assert got is not None and got.status == "delivered"
    assert got.delivered_at is not None and _aware_utc(got.delivered_at)
    # MongoDB truncates to the millisecond.
    assert before - timedelta(milliseconds=1) <= got.delivered_at <= datetime.now(UTC)
    assert (got.text, got.due_at, got.created_at) == (r.text, r.due_at, r.created_at)

    # Not pending any more: neither a second delivery nor a cancel changes it.
    assert await store.close_reminder(A, r.id, "delivered") is False
    assert await store.close_reminder(A, r.id, "cancelled") is False
    assert await store.get_reminder(A, r.id) == got

    c = await store.add_reminder(A, "cancel me", DUE)
    assert await store.close_reminder(A, c.id, "cancelled") is True
    cancelled = await store.get_reminder(A, c.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancelled.delivered_at is not None and _aware_utc(cancelled.delivered_at)
    assert await store.close_reminder(A, c.id, "delivered") is False
    assert await store.close_reminder(A, c.id, "cancelled") is False

    assert await store.close_reminder(A, "missing", "delivered") is False
    assert await store.close_reminder(A, "missing", "cancelled") is False


async def test_close_reminder_rejects_other_statuses(store: Store) -> None:
    r = await store.add_reminder(A, "x", DUE)
    for bad in ("pending", "done", ""):
        with pytest.raises(ValueError, match="reminder close status"):
            await store.close_reminder(A, r.id, bad)  # type: ignore[arg-type]
    assert await store.get_reminder(A, r.id) == r  # untouched


async def test_close_reminder_race_has_one_winner(store: Store) -> None:
    """Two sessions of one user may both try to deliver a due reminder: one wins."""
    rs = [await store.add_reminder(A, f"r{i}", DUE) for i in range(5)]
    for r in rs:
        results = await asyncio.gather(
            store.close_reminder(A, r.id, "delivered"),
            store.close_reminder(A, r.id, "delivered"),
        )
        assert sorted(results) == [False, True]
    # Deliver and cancel racing: exactly one applies, and the stored status is the winner's.
    c = await store.add_reminder(A, "raced", DUE)
    delivered, cancelled = await asyncio.gather(
        store.close_reminder(A, c.id, "delivered"),
        store.close_reminder(A, c.id, "cancelled"),
    )
    assert delivered != cancelled
    got = await store.get_reminder(A, c.id)
    assert got is not None and got.status == ("delivered" if delivered else "cancelled")
    assert await store.count_reminders(A, "pending") == 0
    assert await store.count_reminders(A, "delivered") == 5 + int(delivered)


async def test_reminder_isolation(store: Store) -> None:
    r = await store.add_reminder(A, "A's secret", DUE)

    assert await store.get_reminder(B, r.id) is None
    assert await store.list_reminders(B) == []
    assert await store.list_reminders(B, status="pending") == []
    assert await store.count_reminders(B, "pending") == 0
    assert await store.close_reminder(B, r.id, "delivered") is False
    assert await store.close_reminder(B, r.id, "cancelled") is False

    # A's reminder is still pending and still A's alone.
    assert await store.get_reminder(A, r.id) == r
    assert await store.count_reminders(A, "pending") == 1
    assert await store.count_reminders(B, "delivered") == 0
    assert await store.count_reminders(B, "cancelled") == 0

    # And B's own reminders stay out of A's view.
    mine = await store.add_reminder(B, "B's", DUE)
    assert [x.id for x in await store.list_reminders(A)] == [r.id]
    assert await store.close_reminder(A, mine.id, "delivered") is False
    assert await store.close_reminder(A, r.id, "delivered") is True
    assert await store.get_reminder(B, mine.id) == mine


# -- reminder delivery attempts ---------------------------------------------------


async def test_claim_reminder_is_a_lease_with_one_winner(store: Store) -> None:
    r = await store.add_reminder(A, "stretch", utcnow())
    until = utcnow() + timedelta(seconds=30)
    wins = await asyncio.gather(*(store.claim_reminder(A, r.id, until) for _ in range(5)))
    assert sorted(wins) == [False] * 4 + [True]
    got = await store.get_reminder(A, r.id)
    assert got is not None and got.status == "pending" and got.not_before is not None
    assert abs((got.not_before - until).total_seconds()) < 0.01
    assert await store.claim_reminder(B, r.id, until) is False  # not B's
    # an expired lease (a session that died mid-delivery) can be claimed again
    other = await store.add_reminder(A, "water", utcnow())
    assert await store.claim_reminder(A, other.id, utcnow() - timedelta(seconds=1))
    assert await store.claim_reminder(A, other.id, until) is True


async def test_failed_attempts_back_off_then_fail_with_their_reason(store: Store) -> None:
    r = await store.add_reminder(A, "call mum", utcnow())
    assert await store.claim_reminder(A, r.id, utcnow() + timedelta(seconds=30))
    retry = utcnow() + timedelta(seconds=60)
    assert await store.fail_reminder_attempt(A, r.id, "socket closed", retry) is True
    got = await store.get_reminder(A, r.id)
    assert got is not None and got.status == "pending"
    assert (got.attempts, got.last_error) == (1, "socket closed")
    assert got.not_before is not None and abs((got.not_before - retry).total_seconds()) < 0.01
    assert await store.claim_reminder(A, r.id, retry) is False  # backing off
    assert await store.fail_reminder_attempt(B, r.id, "x", None) is False  # not B's
    assert await store.fail_reminder_attempt(A, r.id, "write failed", None) is True
    got = await store.get_reminder(A, r.id)
    assert got is not None and got.status == "failed" and got.attempts == 2
    assert got.last_error == "write failed" and got.delivered_at is not None
    assert await store.claim_reminder(A, r.id, retry) is False
    assert await store.close_reminder(A, r.id, "delivered") is False
    assert [x.id for x in await store.list_reminders(A, status="failed")] == [r.id]
    assert await store.count_reminders(A, "failed") == 1


async def test_recurring_reminder_round_trip_and_one_advance_per_occurrence(
    store: Store,
) -> None:
    weekly = Repeat("weekly", "09:00", "Asia/Seoul", 0)
    r = await store.add_reminder(A, "weekly review", DUE, weekly)
    assert r.repeat == weekly and r.occurrences == 0
    assert await store.get_reminder(A, r.id) == r
    once = await store.add_reminder(A, "once", DUE)
    assert once.repeat is None and (await store.get_reminder(A, once.id)) == once
    nxt = DUE + timedelta(days=7)
    # five replicas finishing the same occurrence: exactly one moves it on
    assert await store.claim_reminder(A, r.id, utcnow() + timedelta(seconds=30))
    wins = await asyncio.gather(*(store.advance_reminder(A, r.id, DUE, nxt) for _ in range(5)))
    assert sorted(wins) == [False] * 4 + [True]
    got = await store.get_reminder(A, r.id)
    assert got is not None and got.status == "pending" and got.due_at == nxt
    assert (got.occurrences, got.attempts, got.not_before) == (1, 0, None)
    assert got.delivered_at is not None and got.repeat == weekly
    # the next occurrence can be claimed at once (the old lease is gone)
    assert await store.claim_reminder(A, r.id, utcnow() + timedelta(seconds=30))
    # a stale finisher of the old occurrence, another user, a one-off: nothing changes
    assert await store.advance_reminder(A, r.id, DUE, nxt + timedelta(days=7)) is False
    assert await store.advance_reminder(B, r.id, nxt, nxt + timedelta(days=7)) is False
    assert await store.advance_reminder(A, once.id, DUE, DUE + timedelta(days=1)) is False
    # an occurrence given up: skipped with its reason, not counted as delivered
    assert await store.fail_reminder_attempt(A, r.id, "socket closed", utcnow())
    later = nxt + timedelta(days=7)
    assert await store.advance_reminder(A, r.id, nxt, later, "write failed") is True
    got = await store.get_reminder(A, r.id)
    assert got is not None and got.due_at == later and got.status == "pending"
    assert (got.occurrences, got.attempts, got.last_error) == (1, 0, "write failed")
    # listed among the pending ones, and cancelled like any reminder
    assert {x.id for x in await store.list_reminders(A, status="pending")} == {r.id, once.id}
    assert await store.close_reminder(A, r.id, "cancelled") is True
    assert await store.advance_reminder(A, r.id, later, later + timedelta(days=7)) is False
    got = await store.get_reminder(A, r.id)
    assert got is not None and got.status == "cancelled" and got.due_at == later


# -- isolation --------------------------------------------------------------------


async def test_user_isolation(store: Store) -> None:
    s = await store.create_session(A, "seoa", {"secret": True})
    await store.add_message(A, s.id, "seoa", "user", "private")
    await store.add_samples(A, s.id, [Sample("face", 1, {"x": 1})])
    await store.put_report(A, s.id, {"summary": "A only"})
    await store.incr_usage(A, {"api_calls": 2})

    assert await store.get_session(B, s.id) is None
    assert await store.list_sessions(B) == []
    assert await store.update_session(B, s.id, status="ended") is False
    assert await store.update_session(B, s.id) is False
    assert await store.list_messages(B, s.id) == []
    assert await store.count_messages(B) == 0
    assert await store.count_messages(B, persona_id="seoa") == 0
    assert await store.list_samples(B, s.id) == []
    assert await store.get_report(B, s.id) is None
    assert await store.get_usage(B) == {}

    # B writing under A's session id lands in B's space only.
    await store.put_report(B, s.id, {"summary": "B's"})
    await store.add_message(B, s.id, "seoa", "user", "B's message")
    assert await store.get_report(A, s.id) == {"summary": "A only"}
    assert [m.content for m in await store.list_messages(A, s.id)] == ["private"]

    # A's data is untouched by B's attempts.
    got = await store.get_session(A, s.id)
    assert got is not None and got.status == "active" and got.settings == {"secret": True}
    assert [x.id for x in await store.list_sessions(A)] == [s.id]


# -- LangGraph checkpointer -------------------------------------------------------


class _State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: Annotated[int, operator.add]


def _reply(state: _State) -> dict[str, Any]:
    last = state["messages"][-1].content
    return {"messages": [AIMessage(content=f"echo: {last}")], "turns": 1}


def echo_graph(saver: Any) -> Any:
    """A one-node graph that echoes the last message and counts its turns, on ``saver``
    (also the checkpoint memo's test graph)."""
    builder = StateGraph(_State)
    builder.add_node("reply", _reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)


def _graph(store: Store) -> Any:
    return echo_graph(store.checkpointer())


async def test_checkpointer_keeps_thread_history(store: Store) -> None:
    graph = _graph(store)
    t1 = {"configurable": {"thread_id": "t1"}}
    t2 = {"configurable": {"thread_id": "t2"}}

    out = await graph.ainvoke({"messages": [HumanMessage("hello")]}, t1)
    assert [m.content for m in out["messages"]] == ["hello", "echo: hello"]
    out = await graph.ainvoke({"messages": [HumanMessage("again")]}, t1)
    assert [m.content for m in out["messages"]] == [
        "hello",
        "echo: hello",
        "again",
        "echo: again",
    ]
    assert out["turns"] == 2

    out = await graph.ainvoke({"messages": [HumanMessage("other")]}, t2)
    assert [m.content for m in out["messages"]] == ["other", "echo: other"]
    assert out["turns"] == 1

    state = await graph.aget_state(t1)
    assert len(state.values["messages"]) == 4
    history = [h async for h in graph.aget_state_history(t1)]
    assert len(history) >= 4  # input + step checkpoints for two runs


async def test_checkpointer_drops_one_runs_checkpoints(store: Store) -> None:
    """A discarded run's checkpoints (tagged in their metadata) are dropped: the thread is
    back to the checkpoint before it, same id, and other threads keep theirs."""
    graph = _graph(store)
    saver = store.checkpointer()
    t1 = {"configurable": {"thread_id": "t1"}}
    await graph.ainvoke({"messages": [HumanMessage("kept")]}, t1, durability="exit")
    await graph.ainvoke(
        {"messages": [HumanMessage("other")]}, {"configurable": {"thread_id": "t2"}}
    )
    before = (await graph.aget_state(t1)).config["configurable"]["checkpoint_id"]
    tagged = t1 | {"metadata": {"run_tag": "r1"}}
    await graph.ainvoke({"messages": [HumanMessage("dropped")]}, tagged, durability="exit")
    ids = [
        c.config["configurable"]["checkpoint_id"]
        async for c in saver.alist(t1, filter={"run_tag": "r1"})
    ]
    assert len(ids) == 1
    await saver.adrop_checkpoints("t1", ids)  # type: ignore[attr-defined]
    state = await graph.aget_state(t1)
    assert state.config["configurable"]["checkpoint_id"] == before
    assert [m.content for m in state.values["messages"]] == ["kept", "echo: kept"]
    assert [c async for c in saver.alist(t1, filter={"run_tag": "r1"})] == []
    other = await graph.aget_state({"configurable": {"thread_id": "t2"}})
    assert [m.content for m in other.values["messages"]] == ["other", "echo: other"]


# -- SQLite persistence -----------------------------------------------------------


async def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"  # created on open
    first = SQLiteStore(data_dir)
    await first.open()
    s = await first.create_session(A, "seoa", {"voice": "ko"})
    m = await first.add_message(A, s.id, "seoa", "assistant", "hi", timings={"ttft_ms": 1.5})
    await first.add_samples(A, s.id, [Sample("face", 5, {"e": "happy"})])
    await first.incr_usage(A, {"api_calls": 2})
    await first.put_report(A, s.id, {"summary": "ok"})
    pending = await first.add_reminder(A, "later", DUE)
    done = await first.add_reminder(A, "done", DUE - timedelta(days=1))
    assert await first.close_reminder(A, done.id, "delivered")
    done_after = await first.get_reminder(A, done.id)
    await _graph(first).ainvoke(
        {"messages": [HumanMessage("x")]}, {"configurable": {"thread_id": s.thread_id}}
    )
    await first.close()

    assert (data_dir / "desktopmate.sqlite3").is_file()
    assert (data_dir / "checkpoints.sqlite3").is_file()

    second = SQLiteStore(data_dir)
    await second.open()
    try:
        assert await second.get_session(A, s.id) == s
        assert await second.list_messages(A, s.id) == [m]
        assert await second.list_samples(A, s.id) == [Sample("face", 5, {"e": "happy"})]
        assert await second.get_usage(A) == {"api_calls": 2}
        assert await second.get_report(A, s.id) == {"summary": "ok"}
        assert await second.list_reminders(A) == [done_after, pending]
        assert await second.close_reminder(A, done.id, "cancelled") is False
        assert await second.close_reminder(A, pending.id, "delivered") is True
        state = await _graph(second).aget_state({"configurable": {"thread_id": s.thread_id}})
        assert [msg.content for msg in state.values["messages"]] == ["x", "echo: x"]
        # New writes after reopen still sort after the old ones.
        m2 = await second.add_message(A, s.id, "seoa", "user", "later")
        assert [x.id for x in await second.list_messages(A, s.id)] == [m.id, m2.id]
    finally:
        await second.close()


# -- indexes ----------------------------------------------------------------------


async def test_sqlite_queries_use_indexes(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path)
    await s.open()
    await s.close()
    conn = sqlite3.connect(s.db_path)
    try:

        def plan(sql: str) -> str:
            rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("u", "s", "p")[: sql.count("?")])
            return " | ".join(r[-1] for r in rows)

        assert "sessions_user_started" in plan(
            "SELECT * FROM sessions WHERE user_id = ? ORDER BY started_at DESC, rowid DESC"
        )
        messages = plan(
            "SELECT * FROM messages WHERE user_id = ? AND session_id = ? ORDER BY created_at, rowid"
        )
        assert "messages_user_session_created" in messages and "TEMP B-TREE" not in messages
        assert "messages_user_persona_role" in plan(
            "SELECT COUNT(*) FROM messages WHERE user_id = ? AND persona_id = ? AND role = ?"
        )
        samples = plan(
            "SELECT * FROM samples WHERE user_id = ? AND session_id = ? ORDER BY t_ms, rowid"
        )
        assert "samples_user_session_t" in samples and "TEMP B-TREE" not in samples
        pending = plan(
            "SELECT * FROM reminders WHERE user_id = ? AND status = ? "
            "ORDER BY due_at, created_at, rowid"
        )
        assert "reminders_user_status_due" in pending
        assert "reminders_user_status_due" in plan(
            "SELECT COUNT(*) FROM reminders WHERE user_id = ? AND status = ?"
        )
        wal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert wal == "wal"
    finally:
        conn.close()


async def test_mongo_indexes_created(mongo_uri: str) -> None:
    s = MongoStore(mongo_uri, f"idx_{new_id()}")
    await s.open()
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri)
    try:
        db = client[s.db_name]
        found: dict[str, dict[str, Any]] = {}
        for coll in ("sessions", "messages", "samples", "usage", "reports", "reminders"):
            async for ix in await db[coll].list_indexes():
                found[f"{coll}.{ix['name']}"] = {**ix, "key": list(ix["key"])}
        assert found["sessions.user_started"]["key"] == ["user_id", "started_at"]
        assert found["messages.user_session_created"]["key"] == [
            "user_id",
            "session_id",
            "created_at",
        ]
        assert found["messages.user_persona_role"]["key"] == ["user_id", "persona_id", "role"]
        assert found["samples.user_session_t"]["key"] == ["user_id", "session_id", "t_ms"]
        assert found["usage.user_unique"]["unique"] is True
        assert found["reports.user_session_unique"]["unique"] is True
        assert found["reports.user_session_unique"]["key"] == ["user_id", "session_id"]
        assert found["reminders.user_status_due"]["key"] == ["user_id", "status", "due_at"]
        # The checkpointer lives in the same database.
        names = await db.list_collection_names()
        assert {"checkpoints", "checkpoint_writes"} <= set(names)
    finally:
        await client.close()
        await s.close()


# -- controlled vocabulary --------------------------------------------------------


async def test_vocabulary_inserts_only_missing_terms_and_lists_them_sorted(store: Store) -> None:
    assert await store.vocabulary_terms() == []
    assert await store.add_vocabulary_terms(["work", "hobby", "work"]) == ["work", "hobby"]
    assert await store.add_vocabulary_terms(["location", "hobby"]) == ["location"]
    assert await store.vocabulary_terms() == ["hobby", "location", "work"]
    # concurrent ensures of the same term insert it once (insert-or-ignore / upsert)
    results = await asyncio.gather(*(store.add_vocabulary_terms(["health"]) for _ in range(5)))
    assert sum(len(r) for r in results) == 1
    assert await store.vocabulary_terms() == ["health", "hobby", "location", "work"]
