"""Hub latency benchmark: what the server adds on top of the language model.

Starts the fake OpenAI server (``bench.fake_llm``, a separate process) and the real server
(``desktopmate serve --port 0``, another process), then drives text turns over the
WebSocket protocol and prints a table:

- TTFT overhead: client time to first ``response.text.delta`` (from sending ``input_text``)
  minus the fake's own time to first token (request received -> first token emitted, read
  from the fake's request log; both processes share CLOCK_MONOTONIC).
- per-token added delay: the client's first-to-last delta span per token minus the fake's own
  mean token gap (a delta may carry several tokens: STREAM_FLUSH_MS).
- whole-turn overhead: send -> ``response.done`` minus the fake's own stream time.
- the same with N concurrent sessions, plus the server's event-loop lag (``GET
  /health/details``, ``server/loopmon.py``), server CPU and RSS.

Usage: ``uv run python -m bench.latency [--memory on|off|both] [--turns 50] [--sessions 50]``.
See bench/README.md. This module runs the phases; the client is bench/latency_client.py and
the table bench/latency_table.py (bench/scale.py uses both).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench.latency_client import Turn, attach_fake_records, run_sessions, tool_round_gaps
from bench.latency_table import Row, others_pct, render, stat_rows, turn_rows
from bench.procs import (
    FakeLLM,
    ServerProcess,
    fake_llm_settings,
    print_tables,
    proc_rss_mb,
    run_main,
    server_env,
)
from server.loopmon import percentile


# --- child processes ----------------------------------------------------------------------
def make_server(
    args: argparse.Namespace, workdir: Path, llm_url: str, memory: bool
) -> ServerProcess:
    """The server under test, with its own data dir, against the fake LLM."""
    env = server_env(
        {
            **fake_llm_settings(workdir, llm_url),
            "EMBED_DIMS": str(args.dims),
            "MEMORY_ENABLED": "true" if memory else "false",
            "STT_ENABLED": "false",  # text turns only: no model download attempt
            "FACE_ENABLED": "false",
            "LOG_LEVEL": args.log_level,
        },
        extra=args.set,
    )
    return ServerProcess(workdir, env)


# --- one configuration ------------------------------------------------------------------------
async def run_mode(args: argparse.Namespace, memory: bool, base: Path) -> str:
    workdir = base / ("memory-on" if memory else "memory-off")
    workdir.mkdir(parents=True)
    fake = FakeLLM(
        workdir / "fake.log",
        ttft_ms=args.ttft_ms,
        token_ms=args.token_ms,
        tokens=args.tokens,
        dims=args.dims,
    )
    server: ServerProcess | None = None
    mode = "memory on (mem0 + embedded Qdrant)" if memory else "memory off"
    try:
        await fake.start()
        server = make_server(args, workdir, fake.base_url, memory)
        t = time.monotonic()
        await server.start()
        print(f"[{mode}] server up in {time.monotonic() - t:.1f} s at {server.url}", flush=True)
        d = await server.details()
        settle_until = time.monotonic() + 180
        while "loading" in d["modules"].values() and time.monotonic() < settle_until:
            await asyncio.sleep(0.5)  # e.g. the STT model loading in the background
            d = await server.details()
        if "loading" in d["modules"].values():
            print(f"  warning: modules still loading: {d['modules']}")
        if memory and d["modules"].get("memory") != "ready":
            print(f"  warning: memory module is {d['modules'].get('memory')}: {d['details']}")
        rss_idle = proc_rss_mb(server.pid)
        nominal_s = (args.ttft_ms + (args.tokens - 1) * args.token_ms) / 1000
        turn_timeout = max(30.0, nominal_s * 10)

        warm, _ = await run_sessions(server, fake.pid, "warm", 1, args.warmup, 0, 0, turn_timeout)
        await asyncio.sleep(args.settle_s)
        print(f"[{mode}] 1 session x {args.turns} turns ...", flush=True)
        one, one_stats = await run_sessions(
            server, fake.pid, "one", 1, args.turns, 0, args.think_ms / 1000, turn_timeout
        )
        await asyncio.sleep(args.settle_s)
        stagger = 0.0 if args.burst else nominal_s / max(args.sessions, 1)
        print(f"[{mode}] {args.sessions} sessions x {args.session_turns} turns ...", flush=True)
        many, many_stats = await run_sessions(
            server,
            fake.pid,
            "many",
            args.sessions,
            args.session_turns,
            stagger,
            args.think_ms / 1000,
            turn_timeout,
        )
        tools: list[Turn] = []
        if args.tool_turns:
            await asyncio.sleep(args.settle_s)
            print(f"[{mode}] 1 session x {args.tool_turns} tool turns ...", flush=True)
            tools, _ = await run_sessions(
                server, fake.pid, "tool", 1, args.tool_turns, 0, 0, turn_timeout
            )
        records = await fake.dump()
        attach_fake_records(warm + one + many, records)
        tool_rounds = tool_round_gaps(tools, records)
    finally:
        if server is not None:
            await server.stop()
        await fake.stop()

    blocks = []
    for name, turns, stats, multi in (
        (f"1 session x {args.turns} turns", one, one_stats, False),
        (
            f"{args.sessions} concurrent sessions x {args.session_turns} turns"
            + (
                " (all start at once)"
                if args.burst
                else f" (starts staggered {stagger * 1000:.0f} ms)"
            ),
            many,
            many_stats,
            True,
        ),
    ):
        ok = [t for t in turns if t.ok]
        bad = len(turns) - len(ok)
        short = sum(1 for t in ok if len(t.deltas) != args.tokens)
        rows = turn_rows(turns, args, not multi, 15 if memory else 10)
        rows += stat_rows(stats, multi, len(turns))
        notes = [
            f"  turns: {len(ok)} measured, {bad} failed/unmatched"
            + (f" [{', '.join(sorted({t.status for t in turns if not t.ok}))}]" if bad else "")
            + (f", {short} with a delta count != {args.tokens}" if short else "")
            + f"; phase wall time {stats['wall_s']:.1f} s",
            f"  server RSS: {stats['rss_before']:.0f} MB -> {stats['rss_after']:.0f} MB"
            f" (idle after start-up: {rss_idle:.0f} MB)",
        ]
        others = others_pct(stats)
        if others > 25:
            notes.append(
                f"  WARNING: other processes used {others:.0f}% of a core during this phase"
                f" ({os.cpu_count()} CPUs): the numbers above include their interference."
            )
        if not multi and len(ok) >= 20:
            firsts = sorted(
                (t.deltas[0] - t.t_send) * 1000 - (t.llm["t_first_token"] - t.llm["t"]) * 1000  # type: ignore[index]
                for t in ok[:10]
            )
            lasts = sorted(
                (t.deltas[0] - t.t_send) * 1000 - (t.llm["t_first_token"] - t.llm["t"]) * 1000  # type: ignore[index]
                for t in ok[-10:]
            )
            notes.append(
                f"  TTFT overhead median, first 10 turns {percentile(firsts, 50):.1f} ms,"
                f" last 10 turns {percentile(lasts, 50):.1f} ms (history grows per turn)"
            )
        blocks.append((name, rows, notes))
    if args.tool_turns:
        blocks.append(
            (
                f"1 session x {args.tool_turns} tool turns (schedule_list, then the answer)",
                [
                    Row(
                        "tool call end -> next LLM request",
                        tool_rounds,
                        "p50<=10",
                        lambda s: s["p50"] <= 10,
                    )
                ],
                [
                    f"  turns: {len(tool_rounds)} measured of {len(tools)}; from the fake's"
                    " last byte of the streamed tool call to its receipt of the next call"
                    " (includes the tool's own SQLite read, no external call)"
                ],
            )
        )
    title = (
        f"DesktopMate-Plus hub latency - {mode}; fake LLM TTFT {args.ttft_ms:g} ms,"
        f" {args.token_ms:g} ms/token, {args.tokens} tokens; {os.cpu_count()} CPUs"
        + (f"; nice {args.nice}" if args.nice is not None else "")
    )
    return render(title, blocks)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--turns", type=int, default=50, help="turns in the one-session phase")
    ap.add_argument("--sessions", type=int, default=50, help="concurrent sessions")
    ap.add_argument("--session-turns", type=int, default=3, help="turns per concurrent session")
    ap.add_argument("--ttft-ms", type=float, default=200)
    ap.add_argument("--token-ms", type=float, default=20)
    ap.add_argument("--tokens", type=int, default=60)
    ap.add_argument("--dims", type=int, default=64, help="embedding size (fake and server)")
    ap.add_argument("--memory", choices=("on", "off", "both"), default="on")
    ap.add_argument("--no-memory", dest="memory", action="store_const", const="off")
    ap.add_argument("--warmup", type=int, default=2, help="uncounted turns first")
    ap.add_argument(
        "--tool-turns", type=int, default=20, help="turns with one tool round (0: none)"
    )
    ap.add_argument("--think-ms", type=float, default=0, help="pause between a session's turns")
    ap.add_argument("--burst", action="store_true", help="start all sessions at the same time")
    ap.add_argument("--settle-s", type=float, default=2.0, help="pause between phases")
    ap.add_argument("--log-level", default="INFO", help="server LOG_LEVEL")
    ap.add_argument("--max-seconds", type=float, default=900, help="hard limit for the run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    ap.add_argument(
        "--protocols",
        action="store_true",
        help="instead: a text turn and a voice turn through /v1/ws, DesktopMatePlus and"
        " OpenAI Realtime (bench/protocol_latency.py); --turns sets the turns per row",
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=None,
        help="run the benchmark, fake and server at this niceness (negative needs root):"
        " shields the numbers from other work on a shared host",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting (repeatable), e.g. --set EVENT_LOOP=asyncio for an A/B run",
    )
    return ap.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.memory]

    async def tables(base: Path) -> AsyncIterator[str]:
        if args.protocols:
            from bench.protocol_latency import table

            yield await table(args, base)
            return
        for memory in modes:
            yield await run_mode(args, memory, base)

    return await print_tables(args, "dm-bench-", tables)


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), amain)


if __name__ == "__main__":
    sys.exit(main())
