"""CPU of the turn graph alone: Agent.stream_turn per turn, without sockets or a model server.

The model is a stand-in that hands two text deltas to the node and returns at once, so what
is measured is LangGraph (its steps, the checkpoint read and write), the nodes and
stream_turn: the part of a turn's CPU that does not depend on the reply's length. Sessions
run concurrently (one thread each, with their history growing to HISTORY_MESSAGES as it
would), on uvloop, with the server's SQLite checkpointer (its own thread counts too:
the process CPU is measured).

    uv run python -m bench.turn_graph                      # 20 threads, 1000 turns
    uv run python -m bench.turn_graph --saver memory       # without the SQLite checkpointer

For an A/B run of two source copies: ``cd COPY && PYTHONPATH=. python -m bench.turn_graph``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from server.agent.graph import Agent
from server.agent.memory.longterm import LongTermMemory
from server.agent.state import TurnContext
from server.config import Settings
from server.personas import PersonaLibrary
from server.providers.chat_stream import ChatResult
from server.store.checkpoints_sqlite import OneHopSqliteSaver

ROOT = Path(__file__).resolve().parent.parent


class StandInModel:
    """Answers every call with two deltas at once (ChatStream's interface)."""

    def new_meter(self) -> None:
        return None

    async def stream(self, messages: list[dict[str, Any]], on_delta: Any, **_: Any) -> ChatResult:
        on_delta("Hello ")
        on_delta("there.")
        usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        return ChatResult("Hello there.", usage=usage)


async def run(args: argparse.Namespace) -> None:
    persona = PersonaLibrary(ROOT / "personas").load().get("emma")
    assert persona is not None
    settings = Settings(memory_enabled=False)
    saver: BaseCheckpointSaver = (
        InMemorySaver()
        if args.saver == "memory"
        else OneHopSqliteSaver(Path(tempfile.mkdtemp()) / "checkpoints.sqlite3")
    )
    agent = Agent(None, LongTermMemory(settings), saver, chat=StandInModel())  # type: ignore[arg-type]

    async def session(k: int, turns: int) -> None:
        for i in range(turns):
            ctx = TurnContext(persona=persona, user_turns=i)
            async for _ in agent.stream_turn(f"u{k}", f"t{k}", f"message {i}", ctx):
                pass

    n = args.sessions
    await asyncio.gather(*(session(k, 13) for k in range(n)))  # warm up, histories full
    per = max(1, args.turns // n)
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(session(k, per) for k in range(n)))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    print(
        f"turn graph: {cpu / (per * n) * 1000:.2f} ms CPU per turn "
        f"({per * n} turns, {n} concurrent threads, {args.saver} checkpointer, {wall:.1f} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=1000, help="measured turns in all")
    ap.add_argument("--sessions", type=int, default=20, help="concurrent threads")
    ap.add_argument("--saver", choices=("sqlite", "memory"), default="sqlite")
    uvloop.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
