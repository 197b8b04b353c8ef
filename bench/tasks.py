"""Screen task assistant: the server's time per step, without the VLM call.

    uv run python -m bench.tasks                  # 20 tasks of 6 steps, about 30 s
    uv run python -m bench.tasks --tasks 50 --vlm-ms 3000

The server runs in its own process (`desktopmate serve`); the fake VLM (the tests'
FakeOpenAI, in this process) reads a marker square in each screenshot to know which of the
synthetic 1280x720 screens it sees, and answers that screen's step (the last screen is a
payment form, so every task ends blocked_payment). This script is the client: it starts a
task with the first screenshot, then confirms each previewed action with the next screen,
as a real client would after clicking.

Rows (target: p95 <= 50 ms per step):
- in-server: each step's `server_ms` from the stored action (or the block): the time the
  server spent on the step up to its preview (decode and screen diff in one worker-thread
  trip, payment rules, the verdict with its route entry and step in one transaction, the new
  action's insert alongside the screenshot file write) minus the VLM call; for the payment
  stop, up to its status write;
- REST round trip minus VLM: the client's time for `POST .../confirm` (a 1280x720 JPEG in
  base64 up, JSON down) minus the VLM call's time measured by the server;
- VLM call: what the server waited for the fake (HTTP included; `--vlm-ms` of model time).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

from bench.procs import ServerProcess, fake_llm_settings, server_env
from server.loopmon import percentile
from tests.fakes.openai_server import FakeOpenAI

TARGET_P95_MS = 50.0
SCREENS = 6  # the last one is the payment form
COLORS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0)]


def draw_screen(i: int) -> bytes:
    """A 1280x720 app screen: a marker square (BGR colour i), a title, boxes, a button."""
    img = np.full((720, 1280, 3), 248, np.uint8)
    cv2.rectangle(img, (0, 0), (40, 40), COLORS[i], -1)
    title = "Checkout" if i == SCREENS - 1 else f"Screen {i}"
    cv2.putText(img, title, (80, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (30, 30, 30), 3)
    rng = np.random.default_rng(i)
    for _ in range(12):
        x, y = int(rng.integers(60, 1100)), int(rng.integers(120, 600))
        cv2.rectangle(
            img, (x, y), (x + 160, y + 50), tuple(int(c) for c in rng.integers(0, 255, 3)), -1
        )
    cv2.rectangle(img, (540, 620), (740, 690), (60, 60, 60), -1)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return jpeg.tobytes()


def which(image: bytes) -> int:
    bgr = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    px = bgr[20, 20].astype(int)
    return int(np.argmin([np.abs(px - np.array(c)).sum() for c in COLORS]))


def answer(i: int) -> dict[str, Any]:
    last = i == SCREENS - 1
    target = "Pay now" if last else f"Next {i}"
    return {
        "current_screen": "Checkout" if last else f"Screen {i}",
        "available_actions": [
            {
                "type": "click",
                "element": target,
                "coordinates": {"x": 640, "y": 655},
                "confidence": 0.9,
            }
        ],
        "recommended_action": {
            "type": "click",
            "target": target,
            "reasoning": "forward",
            "coordinates": {"x": 640, "y": 655},
            "text": "",
            "description": f"press {target}",
        },
        "visible_text": ["Card number", "Total $9.90"] if last else [f"Screen {i}"],
        "is_payment_screen": last,
        "matches_expected_screen": True,
        "expected_next_screen": f"Screen {i + 1}",
        "is_last_step": i == SCREENS - 2,
        "task_complete": False,
        "remaining_plan": [f"Screen {k}" for k in range(i + 1, SCREENS)],
    }


def responder(body: dict[str, Any]) -> str:
    fmt = (body.get("response_format") or {}).get("json_schema") or {}
    if fmt.get("name") != "task_step_analysis":
        return "A screen."
    return json.dumps(answer(which(FakeOpenAI.request_images(body)[0])))


def stats(values: list[float]) -> tuple[float, float, float, float]:
    v = sorted(values)
    return percentile(v, 50), percentile(v, 95), percentile(v, 99), v[-1]


async def run(args: argparse.Namespace) -> None:
    screens = [base64.b64encode(draw_screen(i)).decode() for i in range(SCREENS)]
    with FakeOpenAI(ttft_ms=args.vlm_ms) as fake, tempfile.TemporaryDirectory() as tmp:
        fake.set_default(responder)
        env = server_env(
            {
                **fake_llm_settings(Path(tmp), fake.base_url),
                "MEMORY_ENABLED": "false",
                "FACE_ENABLED": "false",
                "STT_ENABLED": "false",
                "LOG_LEVEL": "WARNING",
                "TASK_KEEP_SCREENSHOTS": "true" if args.keep_screenshots else "false",
            }
        )
        server = ServerProcess(Path(tmp), env, ready=lambda d: d.get("status") == "ok")
        await server.start()
        in_server: list[float] = []
        round_trip: list[float] = []
        vlm: list[float] = []
        try:
            async with httpx.AsyncClient(
                base_url=server.url, headers={"Authorization": "Bearer bench"}, timeout=60
            ) as http:
                items = dict.fromkeys(
                    ["automation_scope", "legal_risk", "research_only", "data_storage"], True
                )
                (await http.post("/v1/users/consent", json={"items": items})).raise_for_status()
                for n in range(args.warmup + args.tasks):
                    counted = n >= args.warmup
                    r = await http.post(
                        "/v1/tasks",
                        json={
                            "app_name": "Bench",
                            "task": "order",
                            "consent_confirmed": True,
                            "screenshot": screens[0],
                        },
                    )
                    r.raise_for_status()
                    task_id = r.json()["task_id"]
                    preview = r.json()["next_action_preview"]
                    rtts: list[float] = []
                    for i in range(1, SCREENS):
                        t0 = time.perf_counter()
                        r = await http.post(
                            f"/v1/tasks/{task_id}/actions/{preview['action_id']}/confirm",
                            json={"executed": True, "screenshot": screens[i]},
                        )
                        rtts.append((time.perf_counter() - t0) * 1000)
                        r.raise_for_status()
                        preview = r.json()["next_action_preview"]
                        if preview is None:
                            break
                    task = (await http.get(f"/v1/tasks/{task_id}")).json()
                    assert task["status"] == "blocked_payment", task["status"]
                    # confirm k produced action k+1 (the last one produced the block)
                    produced = [a["details"] for a in task["actions"][1:]] + [task["blocked"]]
                    if counted:
                        for rtt, d in zip(rtts, produced, strict=True):
                            in_server.append(d["server_ms"])
                            vlm.append(d["vlm_ms"])
                            round_trip.append(rtt - d["vlm_ms"])
        finally:
            await server.stop()
    rows = [
        ("in-server time per step, excl. VLM", stats(in_server)),
        ("REST confirm round trip minus VLM", stats(round_trip)),
        (f"VLM call (fake, {args.vlm_ms:g} ms model time)", stats(vlm)),
    ]
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nscreen tasks: {args.tasks} tasks x {SCREENS - 1} steps = {len(in_server)} steps, "
        f"1280x720 JPEG screenshots, target p95 <= {TARGET_P95_MS:g} ms per step\n"
        f"load average (1 / 5 / 15 min) at the end: {load} on {os.cpu_count()} CPUs\n"
    )
    print(f"{'':38} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  target")
    for name, (p50, p95, p99, mx) in rows:
        verdict = ""
        if not name.startswith("VLM"):
            verdict = "ok" if p95 <= TARGET_P95_MS else "MISSED"
        print(f"{name:38} {p50:8.1f} {p95:8.1f} {p99:8.1f} {mx:8.1f}  {verdict}")
    print("\n(ms; a 3 s VLM answer plus the p95 keeps a step well inside seed 001's 10 s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--vlm-ms", type=float, default=0.0, help="the fake VLM's answer time")
    ap.add_argument(
        "--no-keep-screenshots",
        dest="keep_screenshots",
        action="store_false",
        help="TASK_KEEP_SCREENSHOTS=false (no file write per step)",
    )
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
