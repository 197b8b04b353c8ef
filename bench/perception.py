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
The in-process costs are bench/perception_micro.py, the load phase bench/perception_load.py;
this module prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from bench.perception_load import FACE_MODEL, load
from bench.perception_micro import astronaut_jpeg, micro, offline_face
from server.loopmon import percentile
from server.providers.face import FaceLandmarkerProvider


def pct(values: list[float], q: float) -> float:
    return percentile(sorted(values), q)


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
