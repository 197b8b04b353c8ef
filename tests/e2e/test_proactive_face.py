"""Camera-based proactive triggers end to end, with landmark frames of a real face
(tests/analysis/face_synth.py) and short test timings: long unbroken focus brings a break
suggestion, a strongly negative expression that lasts brings a gentle check-in, and neither
fires without the vision switch or for a passing look. The frames' own clock (t_ms) runs
ahead of the wall clock, so the face's calibration (5 s of face time) takes a moment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.analysis.test_face_expression import PROTOTYPES
from tests.e2e.test_proactive import FAST, connect, no_event, proactive_dir
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient

ANGER = PROTOTYPES["anger"]  # EMFACS anger as blendshapes


class Face:
    """A webcam client: the same real face every 50 ms of wall time, 250 ms of face time."""

    def __init__(self, ws: WsClient) -> None:
        from analysis.face.action_units import BLENDSHAPE_NAMES
        from tests.analysis.face_synth import neutral_frame

        self.ws = ws
        self.landmarks = neutral_frame().round(5).tolist()
        self.neutral = {n: 0.0 for n in BLENDSHAPE_NAMES}
        self.t_ms = 0

    async def show(self, seconds: float, blendshapes: dict[str, float] | None = None) -> None:
        bs = self.neutral | (blendshapes or {})
        for _ in range(int(seconds / 0.05)):
            self.t_ms += 250
            await self.ws.send(
                {
                    "type": "face.landmarks",
                    "t_ms": self.t_ms,
                    "landmarks": self.landmarks,
                    "blendshapes": bs,
                }
            )
            await asyncio.sleep(0.05)


def server(tmp: Path, factory: Callable[..., ServerThread], llm: FakeOpenAI, **over: Any):
    from tests.analysis.face_synth import face_model_path

    return factory(
        llm,
        face_model_path=face_model_path(),
        face_affect_max_age_s=0.5,
        proactive_idle_s=3600.0,
        proactive_dir=proactive_dir(tmp),
        **FAST | over,
    )


async def test_long_unbroken_focus_brings_a_break_suggestion(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = server(tmp_path, server_factory, llm, proactive_focus_s=1.5)
    ws = await connect(srv, "focus-user", proactive_vision=True)
    face = Face(ws)
    await face.show(1.0)
    llm.queue_reply("You have been at it for a while. How about a short stretch?")
    task = asyncio.ensure_future(face.show(4.0))
    created = await ws.wait_for("response.created", timeout=10)
    assert created["trigger"] == "focus"
    faces = ws.of_type("analysis.face")
    assert faces and all(e["gaze_on_screen"] and e["concentration"] >= 60 for e in faces)
    done = await ws.wait_for("response.done", response_id=created["response_id"])
    assert done["text"].startswith("You have been at it")
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"][-1]["content"]
    assert "focused without a break" in prompt
    task.cancel()
    await ws.conn.close()


async def test_a_lasting_strongly_negative_expression_brings_a_check_in(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = server(tmp_path, server_factory, llm, proactive_negative_s=1.0, proactive_focus_s=3600.0)
    ws = await connect(srv, "upset-user", proactive_vision=True)
    face = Face(ws)
    await face.show(1.0)  # calibration: a neutral face
    for seconds, shape in ((0.6, ANGER), (0.5, None)):  # a passing frown: too short
        showing = asyncio.ensure_future(face.show(seconds, shape))
        await no_event(ws, "response.created", seconds)
        await showing
    llm.queue_reply("Hey, is everything okay?")
    task = asyncio.ensure_future(face.show(4.0, ANGER))
    created = await ws.wait_for("response.created", timeout=10)
    assert created["trigger"] == "negative"
    assert "anger" in {e["emotion"] for e in ws.of_type("analysis.face")}
    done = await ws.wait_for("response.done", response_id=created["response_id"])
    assert done["text"] == "Hey, is everything okay?"
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"][-1]["content"]
    assert "looked upset for a while" in prompt
    task.cancel()
    await ws.conn.close()
