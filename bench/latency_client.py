"""bench/latency.py's (and bench/scale.py's) text-turn client: sessions that send
``input_text`` and stamp each ``response.text.delta`` as it arrives, and the matching of every
turn to the fake LLM's record of its calls (both processes share CLOCK_MONOTONIC)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.procs import ServerProcess, host_cpu_s, proc_cpu_s, proc_rss_mb
from server.loopmon import LoopLagMonitor

# text deltas are compact JSON (server/jsonout.py dumps_flat); the spaced form is older servers'
DELTA_PREFIXES = ('{"type":"response.text.delta"', '{"type": "response.text.delta"')


@dataclass
class Turn:
    tag: str
    t_send: float = 0.0
    deltas: list[float] = field(default_factory=list)
    t_done: float | None = None
    status: str = "timeout"
    server_ttft_ms: float | None = None
    llm: dict[str, Any] | None = None  # the fake's record of the generation call
    embed: dict[str, Any] | None = None  # the fake's record of the memory-search embedding

    @property
    def ok(self) -> bool:
        return self.status == "completed" and bool(self.deltas) and self.llm is not None


def turn_text(tag: str) -> str:
    return f"{tag} I like green tea in the morning and I walk my dog by the river."


async def open_session(server: ServerProcess, user: str) -> ClientConnection:
    ws = await connect(
        server.ws_url(token=user), max_size=8 << 20, open_timeout=60, ping_interval=None
    )
    created = json.loads(await asyncio.wait_for(ws.recv(), 60))
    if created.get("type") != "session.created":
        raise RuntimeError(f"expected session.created, got {created}")
    # Text only: no TTS work on the reply, so the numbers are the text path's.
    await ws.send(json.dumps({"type": "session.update", "session": {"output_audio": "none"}}))
    while True:
        ev = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if ev.get("type") == "session.updated":
            return ws
        if ev.get("type") == "error":
            raise RuntimeError(f"session.update refused: {ev}")


async def one_turn(ws: ClientConnection, tag: str, timeout_s: float) -> Turn:
    turn = Turn(tag)
    payload = json.dumps({"type": "input_text", "text": turn_text(tag)})
    turn.t_send = time.monotonic()
    await ws.send(payload)
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await ws.recv()
                now = time.monotonic()
                if isinstance(msg, bytes):
                    continue
                if msg.startswith(DELTA_PREFIXES):  # the hot path: no JSON parse
                    turn.deltas.append(now)
                    continue
                ev = json.loads(msg)
                if ev.get("type") == "response.done":
                    turn.t_done = now
                    turn.status = ev.get("status", "?")
                    turn.server_ttft_ms = (ev.get("timings") or {}).get("ttft_ms")
                    return turn
                if ev.get("type") == "error":
                    turn.status = f"error:{ev.get('code')}"
    except TimeoutError:
        pass
    return turn


async def run_sessions(
    server: ServerProcess,
    fake_pid: int,
    label: str,
    sessions: int,
    turns_each: int,
    stagger_s: float,
    think_s: float,
    turn_timeout_s: float,
) -> tuple[list[Turn], dict[str, Any]]:
    """Connect every session, then run their turns concurrently; returns turns + server stats."""
    conns = await asyncio.gather(
        *(open_session(server, f"bench-{label}-{i:02d}") for i in range(sessions))
    )
    await asyncio.sleep(0.5)  # let session set-up writes settle
    pids = {"server": server.pid, "fake": fake_pid, "bench": os.getpid()}
    stats: dict[str, Any] = {
        "rss_before": proc_rss_mb(server.pid),
        "cpu_before": {k: proc_cpu_s(p) for k, p in pids.items()},
        "host_before": host_cpu_s(),
    }
    await server.details(reset=True)
    client_lag = LoopLagMonitor()
    client_lag.start()
    t0 = time.monotonic()

    async def drive(i: int, ws: ClientConnection) -> list[Turn]:
        await asyncio.sleep(i * stagger_s)
        out = []
        for k in range(turns_each):
            out.append(await one_turn(ws, f"[{label} s{i:02d} t{k:03d}]", turn_timeout_s))
            if think_s:
                await asyncio.sleep(think_s)
        return out

    try:
        results = await asyncio.gather(*(drive(i, ws) for i, ws in enumerate(conns)))
    finally:
        wall = time.monotonic() - t0
        await client_lag.stop()
        stats |= {
            "wall_s": wall,
            "cpu_after": {k: proc_cpu_s(p) for k, p in pids.items()},
            "host_after": host_cpu_s(),
            "rss_after": proc_rss_mb(server.pid),
            "loop_lag": (await server.details())["loop_lag_ms"],
            "client_lag": client_lag.stats(),
        }
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return [t for r in results for t in r], stats


def attach_fake_records(turns: list[Turn], records: list[dict[str, Any]]) -> None:
    """Find each turn's generation call and memory-search embedding in the fake's log."""
    gens: dict[str, dict[str, Any]] = {}
    embeds: dict[str, dict[str, Any]] = {}
    tag_re = re.compile(r"\[[^\]]+ s\d+ t\d+\]")
    for r in sorted(records, key=lambda r: r["t"] or 0):
        m = tag_re.search(r.get("user") or "")
        if not m:
            continue
        tag = m.group(0)
        if r["kind"] == "chat" and r.get("mem0") is None and r.get("stream"):
            gens.setdefault(tag, r)
        elif r["kind"] == "embeddings":
            embeds.setdefault(tag, r)  # the first one is the search; mem0 adds come later
    for t in turns:
        t.llm = gens.get(t.tag)
        emb = embeds.get(t.tag)
        if emb is not None and t.llm is not None and emb["t"] <= t.llm["t"]:
            t.embed = emb


def tool_round_gaps(turns: list[Turn], records: list[dict[str, Any]]) -> list[float]:
    """Per tool turn: the fake's end of the streamed tool-call reply -> its receipt of the
    next chat call (the server parsed the call, ran the tool, built the next request)."""
    calls: dict[str, list[dict[str, Any]]] = {}
    tag_re = re.compile(r"\[tool s\d+ t\d+\]")
    for r in sorted(records, key=lambda r: r["t"] or 0):
        m = tag_re.search(r.get("user") or "")
        if m and r["kind"] == "chat" and r.get("mem0") is None and r.get("stream"):
            calls.setdefault(m.group(0), []).append(r)
    out = []
    for t in turns:
        pair = calls.get(t.tag, [])
        if t.status == "completed" and len(pair) >= 2 and pair[1].get("after_tool"):
            out.append((pair[1]["t"] - pair[0]["t_done"]) * 1000)
    return out
