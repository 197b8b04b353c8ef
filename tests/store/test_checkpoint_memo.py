"""The SQLite checkpointer's memo of encoded checkpoints (server/store/checkpoint_memo.py):
a thread's next turn reads what the last one wrote without decoding it, and what it reads
is exactly what is stored, whoever wrote it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from server.store import Store
from server.store.checkpoint_memo import CheckpointMemo
from server.store.checkpoints_sqlite import OneHopSqliteSaver
from tests.store.test_store_contract import echo_graph


def _memo(saver: Any) -> CheckpointMemo:
    assert isinstance(saver.serde, CheckpointMemo)
    return saver.serde


T1 = {"configurable": {"thread_id": "t1"}}


async def test_next_turn_reads_the_written_checkpoint_without_decoding(store: Store) -> None:
    saver = store.checkpointer()
    graph = echo_graph(saver)
    await graph.ainvoke({"messages": [HumanMessage("hello")]}, T1)
    hits = _memo(saver).hits
    out = await graph.ainvoke({"messages": [HumanMessage("again")]}, T1)
    assert _memo(saver).hits > hits  # the first run's last checkpoint was not decoded
    assert [m.content for m in out["messages"]] == ["hello", "echo: hello", "again", "echo: again"]
    assert out["turns"] == 2
    # the same saver without the memo decodes the same state from the database
    plain = copy.copy(saver)
    plain.serde = JsonPlusSerializer()
    remembered, decoded = await saver.aget_tuple(T1), await plain.aget_tuple(T1)
    assert remembered is not None and decoded is not None
    assert remembered.checkpoint == decoded.checkpoint
    assert remembered.metadata == decoded.metadata


async def test_a_checkpoint_written_elsewhere_is_read_not_the_remembered_one(
    tmp_path: Path,
) -> None:
    """Another replica (its own saver on the same file) wrote the thread's newer state."""
    mine, theirs = (OneHopSqliteSaver(tmp_path / "cp.sqlite3") for _ in range(2))
    await echo_graph(mine).ainvoke({"messages": [HumanMessage("one")]}, T1)
    await echo_graph(theirs).ainvoke({"messages": [HumanMessage("two")]}, T1)
    out = await echo_graph(mine).ainvoke({"messages": [HumanMessage("three")]}, T1)
    assert [m.content for m in out["messages"] if isinstance(m, HumanMessage)] == [
        "one",
        "two",
        "three",
    ]
    assert out["turns"] == 3
    await mine.aclose()
    await theirs.aclose()


async def test_changing_a_read_checkpoint_does_not_change_the_next_read(tmp_path: Path) -> None:
    saver = OneHopSqliteSaver(tmp_path / "cp.sqlite3")
    await echo_graph(saver).ainvoke({"messages": [HumanMessage("hello")]}, T1)
    first = await saver.aget_tuple(T1)
    assert first is not None
    first.checkpoint["channel_values"]["messages"].append(HumanMessage("injected"))
    first.checkpoint["channel_versions"]["messages"] = "changed"
    first.checkpoint["versions_seen"].clear()
    again = await saver.aget_tuple(T1)
    assert again is not None
    assert [m.content for m in again.checkpoint["channel_values"]["messages"]] == [
        "hello",
        "echo: hello",
    ]
    assert again.checkpoint["channel_versions"]["messages"] != "changed"
    assert again.checkpoint["versions_seen"]
    await saver.aclose()


def test_memo_is_bounded_and_pending_writes_are_not_kept() -> None:
    memo = CheckpointMemo(entries=2)
    blobs = []
    for i in range(3):
        cp = {
            "v": 4,
            "id": f"c{i}",
            "ts": "2026-01-01T00:00:00+00:00",
            "channel_values": {"messages": [HumanMessage(f"m{i}")]},
            "channel_versions": {"messages": i},
            "versions_seen": {},
        }
        blobs.append(memo.dumps_typed(cp))
    memo.dumps_typed([HumanMessage("a pending write's value")])
    assert memo.loads_typed(blobs[0])["id"] == "c0"  # evicted: decoded from its bytes
    assert memo.hits == 0
    assert memo.loads_typed(blobs[2])["id"] == "c2"
    assert memo.hits == 1
