"""Scale benchmark: many concurrent text sessions against one or more server processes.

Starts the fake LLM (``bench.fake_llm``, its own process) and ``--replicas`` real server
processes (``desktopmate serve``) sharing one store, spreads ``--sessions`` WebSocket
sessions over them (session i on replica i mod R, as a load balancer keeping each socket on
one replica would), runs ``--session-turns`` text turns in each, all concurrently, and
prints the issue 16 targets (TTFT overhead, event-loop lag, server CPU per turn, RSS) with
the measured values, then sessions and turns per second per replica, then the host's load.

Shared store: one SQLite DATA_DIR (the default), or ``--store mongo``: mongoeco's
MongoDB-wire server in a process of its own (``bench.mongo_wire``) with REPLICA_MODE=multi.
Memory is off: embedded Qdrant cannot be shared by replicas (``--memory on`` is for one
replica). Usage: ``uv run python -m bench.scale [--sessions 100] [--replicas 1|2|4]``.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench.latency_client import Turn, attach_fake_records, one_turn, open_session
from bench.latency_table import Row, render, turn_rows
from bench.procs import (
    ROOT,
    FakeLLM,
    ServerProcess,
    die_with_parent,
    fake_llm_settings,
    host_cpu_s,
    print_tables,
    proc_cpu_s,
    proc_rss_mb,
    run_main,
    server_env,
    stop_process,
)
from server.loopmon import LoopLagMonitor

# Issue 16's targets on this 2-core machine (100 sessions x 3 turns, 40-token replies).
TTFT_P50_MS, TTFT_P95_MS, LAG_P99_MS, CPU_PER_TURN_MS, RSS_IDLE_MB = 30, 100, 20, 8, 250


class MongoWire:
    """``python -m bench.mongo_wire``: a MongoDB-wire server in a process of its own."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.uri = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.mongo_wire",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        self.uri = (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode().strip()
        if not self.uri.startswith("mongodb://"):
            raise RuntimeError("the MongoDB-wire server did not start")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # end of stdin: it stops by itself
            await stop_process(self.proc, signal.SIGTERM, 5)


def make_replica(
    args: argparse.Namespace, base: Path, i: int, llm_url: str, mongo_uri: str
) -> ServerProcess:
    run = base / f"replica-{i}"
    run.mkdir()
    store = (
        {"MONGODB_URI": mongo_uri, "MONGODB_DB": "scale", "REPLICA_MODE": "multi"}
        if mongo_uri
        else {}
    )
    env = server_env(
        {
            **fake_llm_settings(
                base, llm_url
            ),  # its DATA_DIR: a shared SQLite file (unused with MongoDB)
            "INSTANCE_ID": f"replica-{i}",
            "EMBED_DIMS": str(args.dims),
            "MEMORY_ENABLED": "true" if args.memory == "on" else "false",
            "STT_ENABLED": "false",
            "FACE_ENABLED": "false",
            "DEFAULT_OUTPUT_AUDIO": "none",
            "LOG_LEVEL": args.log_level,
            **store,
        },
        extra=args.set,
    )
    return ServerProcess(run, env, timeout_s=180)


@dataclass
class ReplicaStats:
    name: str
    sessions: int
    turns: int
    ok: int
    cpu_s: float
    rss_idle: float
    rss_after: float
    lag: dict[str, Any]


async def drive(
    conns: list[ClientConnection], args: argparse.Namespace, stagger_s: float, timeout_s: float
) -> list[list[Turn]]:
    async def one(i: int, ws: ClientConnection) -> list[Turn]:
        await asyncio.sleep(i * stagger_s)
        return [
            await one_turn(ws, f"[scale s{i:03d} t{k:03d}]", timeout_s)
            for k in range(args.session_turns)
        ]

    return await asyncio.gather(*(one(i, ws) for i, ws in enumerate(conns)))


async def run(args: argparse.Namespace, base: Path) -> str:
    fake = FakeLLM(
        base / "fake.log",
        ttft_ms=args.ttft_ms,
        token_ms=args.token_ms,
        tokens=args.tokens,
        dims=args.dims,
    )
    mongo = MongoWire() if args.store == "mongo" else None
    replicas: list[ServerProcess] = []
    load_before = os.getloadavg()
    try:
        await fake.start()
        if mongo is not None:
            await mongo.start()
        for i in range(args.replicas):  # one at a time: start-up is CPU-bound
            server = make_replica(args, base, i, fake.base_url, mongo.uri if mongo else "")
            replicas.append(server)  # stopped in the end even if it never gets ready
            t = time.monotonic()
            await server.start()
            print(f"replica-{i} up in {time.monotonic() - t:.1f} s at {server.url}", flush=True)
        await asyncio.sleep(args.settle_s)
        rss_idle = [proc_rss_mb(s.pid) for s in replicas]
        warm = [await open_session(s, f"warm-{i}") for i, s in enumerate(replicas)]
        for i, ws in enumerate(warm):  # imports and caches a first turn loads
            await one_turn(ws, f"[warm s{i:03d} t000]", 60)
            await ws.close()

        print(f"connecting {args.sessions} sessions ...", flush=True)
        where = [replicas[i % len(replicas)] for i in range(args.sessions)]
        conns = list(
            await asyncio.gather(*(open_session(s, f"scale-{i:03d}") for i, s in enumerate(where)))
        )
        await asyncio.sleep(args.settle_s)
        nominal_s = (args.ttft_ms + (args.tokens - 1) * args.token_ms) / 1000
        stagger = 0.0 if args.burst else nominal_s / max(args.sessions, 1)
        cpu0 = [proc_cpu_s(s.pid) for s in replicas]
        bench_cpu0, fake_cpu0, host0 = proc_cpu_s(os.getpid()), proc_cpu_s(fake.pid), host_cpu_s()
        mongo_cpu0 = proc_cpu_s(mongo.pid) if mongo else 0.0
        for s in replicas:
            await s.details(reset=True)
        client_lag = LoopLagMonitor()
        client_lag.start()
        print(f"{args.sessions} sessions x {args.session_turns} turns ...", flush=True)
        t0 = time.monotonic()
        per_session = await drive(conns, args, stagger, max(30.0, nominal_s * 10))
        wall = time.monotonic() - t0
        await client_lag.stop()
        cpu1 = [proc_cpu_s(s.pid) for s in replicas]
        bench_cpu = proc_cpu_s(os.getpid()) - bench_cpu0
        fake_cpu = proc_cpu_s(fake.pid) - fake_cpu0
        mongo_cpu = proc_cpu_s(mongo.pid) - mongo_cpu0 if mongo else 0.0
        host1 = host_cpu_s()
        lags = [(await s.details())["loop_lag_ms"] for s in replicas]
        rss_after = [proc_rss_mb(s.pid) for s in replicas]
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
        records = await fake.dump()
    finally:
        for s in replicas:
            await s.stop()
        if mongo is not None:
            await mongo.stop()
        await fake.stop()
    load_after = os.getloadavg()

    turns = [t for ts in per_session for t in ts]
    attach_fake_records(turns, records)
    stats = []
    for i, s in enumerate(replicas):
        mine = [t for k, ts in enumerate(per_session) if where[k] is s for t in ts]
        stats.append(
            ReplicaStats(
                f"replica-{i}",
                sum(1 for w in where if w is s),
                len(mine),
                sum(1 for t in mine if t.ok),
                cpu1[i] - cpu0[i],
                rss_idle[i],
                rss_after[i],
                lags[i],
            )
        )
    host_busy = host1[0] - host0[0]
    ours = sum(r.cpu_s for r in stats) + bench_cpu + fake_cpu + mongo_cpu
    helpers = {"fake LLM": fake_cpu, "bench client": bench_cpu}
    if mongo is not None:
        helpers["MongoDB-wire server"] = mongo_cpu
    return report(args, turns, stats, wall, (load_before, load_after), host_busy - ours, helpers)


def report(
    args: argparse.Namespace,
    turns: list[Turn],
    stats: list[ReplicaStats],
    wall: float,
    loads: tuple[tuple[float, ...], tuple[float, ...]],
    others_cpu_s: float,
    helpers: dict[str, float],
) -> str:
    ok = [t for t in turns if t.ok]
    detail = turn_rows(turns, args, one_session=False)
    ttft = detail[0].values
    worst_lag = max(stats, key=lambda r: r.lag.get("p99", 0.0)).lag
    cpu_per_turn = sum(r.cpu_s for r in stats) / max(len(turns), 1) * 1000
    targets = [
        Row(
            "TTFT overhead (client TTFT - fake's own TTFT)",
            ttft,
            f"p50<={TTFT_P50_MS} p95<={TTFT_P95_MS}",
            lambda s: s["p50"] <= TTFT_P50_MS and s["p95"] <= TTFT_P95_MS,
        ),
        Row(
            f"server event-loop lag, worst replica ({worst_lag.get('samples', 0)} samples)",
            [],
            f"p99<={LAG_P99_MS}",
            lambda s: s["p99"] <= LAG_P99_MS,
            fixed={k: worst_lag.get(k, float("nan")) for k in ("p50", "p95", "p99", "max")},
        ),
        Row(
            "server CPU per turn, all replicas (ms)",
            [cpu_per_turn],
            f"<={CPU_PER_TURN_MS}",
            lambda s: s["max"] <= CPU_PER_TURN_MS,
        ),
        Row(
            "RSS idle, largest replica (MB)",
            [max(r.rss_idle for r in stats)],
            f"<={RSS_IDLE_MB}",
            lambda s: s["max"] <= RSS_IDLE_MB,
            fmt="{:8.0f}",
        ),
        Row("RSS after the run, largest replica (MB)", [max(r.rss_after for r in stats)]),
    ]
    head = (
        f"  {'replica':<10}{'sessions':>9}{'turns ok':>10}{'sess/s':>8}{'turns/s':>9}"
        f"{'CPU %':>7}{'CPU/turn':>9}{'lag p99':>8}{'RSS idle':>9}{'RSS after':>10}"
    )
    per_replica = ["", "  per replica (rates over the phase's wall time)", head]
    for r in stats:
        per_replica.append(
            f"  {r.name:<10}{r.sessions:>9}{f'{r.ok}/{r.turns}':>10}"
            f"{r.sessions / wall:>8.1f}{r.ok / wall:>9.1f}{r.cpu_s / wall * 100:>7.0f}"
            f"{r.cpu_s / max(r.turns, 1) * 1000:>9.1f}{r.lag.get('p99', 0.0):>8.1f}"
            f"{r.rss_idle:>9.0f}{r.rss_after:>10.0f}"
        )
    failed = sorted({t.status for t in turns if not t.ok})
    notes = [
        f"  turns: {len(ok)} of {len(turns)} completed and matched"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + f"; phase wall time {wall:.1f} s; {len(ok) / wall:.1f} turns/s in all",
        f"  load average (1/5/15 min) before {fmt_load(loads[0])}, after {fmt_load(loads[1])};"
        f" other processes used {others_cpu_s / wall * 100:.0f}% of a core during the phase"
        f" ({os.cpu_count()} CPUs)",
        "  CPU of the other benchmark processes, % of one core: "
        + ", ".join(f"{k} {v / wall * 100:.0f}" for k, v in helpers.items()),
        *per_replica,
    ]
    title = (
        f"DesktopMate-Plus scale - {args.sessions} sessions x {args.session_turns} turns over"
        f" {args.replicas} replica(s), store {args.store}, memory {args.memory}; fake LLM TTFT"
        f" {args.ttft_ms:g} ms, {args.token_ms:g} ms/token, {args.tokens} tokens"
    )
    return render(
        title,
        [
            ("issue 16 targets", targets, notes),
            ("details (all turns)", detail[1:], []),
        ],
    )


def fmt_load(load: tuple[float, ...]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sessions", type=int, default=100, help="concurrent sessions")
    ap.add_argument("--session-turns", type=int, default=3, help="turns per session")
    ap.add_argument(
        "--replicas",
        default="1",
        help="server processes; a list (1,2,4) runs one table per count",
    )
    ap.add_argument("--store", choices=("sqlite", "mongo"), default="sqlite")
    ap.add_argument("--memory", choices=("on", "off"), default="off")
    ap.add_argument("--ttft-ms", type=float, default=200)
    ap.add_argument("--token-ms", type=float, default=20)
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--dims", type=int, default=64, help="embedding size (fake and server)")
    ap.add_argument("--burst", action="store_true", help="start all sessions at the same time")
    ap.add_argument("--settle-s", type=float, default=2.0, help="pause before measuring")
    ap.add_argument("--log-level", default="WARNING", help="server LOG_LEVEL")
    ap.add_argument("--max-seconds", type=float, default=900, help="hard limit for the run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    ap.add_argument("--nice", type=int, default=None, help="niceness (as bench/latency.py)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a server setting"
    )
    args = ap.parse_args(argv)
    try:
        args.replica_counts = [int(n) for n in args.replicas.split(",")]
    except ValueError:
        ap.error("--replicas takes a count or a comma-separated list of counts")
    if min(args.replica_counts) < 1 or args.sessions < 1 or args.session_turns < 1:
        ap.error("--replicas, --sessions and --session-turns must be at least 1")
    if args.memory == "on" and max(args.replica_counts) > 1:
        ap.error("--memory on needs one replica: embedded Qdrant cannot be shared")
    return args


async def amain(args: argparse.Namespace) -> int:
    async def tables(base: Path) -> AsyncIterator[str]:
        for n in args.replica_counts:
            args.replicas = n
            (base / str(n)).mkdir()
            yield await run(args, base / str(n))

    return await print_tables(args, "dm-scale-", tables)


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), amain)


if __name__ == "__main__":
    sys.exit(main())
