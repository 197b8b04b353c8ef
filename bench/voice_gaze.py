"""What the camera changes in turn taking (issue 19), measured from outside: the rows of
bench/voice_turns.py's server, each run twice, with ``turn_detection.gaze`` on and off in
``session.update``. The client is a desktop client with a mic (tests.mic.Mic: espeak speech
in real time, room noise) and a face tracker (tests.face_cam.FaceCam: a real face's
MediaPipe landmarks as 0x04 frames at 15 fps), looking at the screen or away from it on the
mic's timeline.

Rows:

- paused sentences (600-900 ms thinking pause), the user looking away from the middle of
  the first half until 300 ms into the second: cut in two (two ``transcript.done``), for
  first halves that sound unfinished ("... for two at") and finished ("... this morning.").
- complete sentences, the user looking away while speaking and back at the screen as the
  words end: end of speech -> turn end (the server's ``eos_to_turn_ms``), p50.
- ambiguous endings ("I was thinking that maybe"), the same look back: ``eos_to_turn_ms``.

Run alone: ``uv run python -m bench.voice_turns --rows gaze --n 6``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.stats import p50_p95

if TYPE_CHECKING:
    from bench.procs import ServerProcess
    from bench.voice_turns_client import Client

PAUSED_DONE = [
    ("I went to the shop this morning.", "And then I bought some fresh bread."),
    ("We watched a film last night.", "It was about a lighthouse keeper."),
    ("My sister called me today.", "She wants to visit us next week."),
    ("I finished the report.", "But the charts still need some work."),
]
AMBIGUOUS = [
    "I was thinking that maybe",
    "So what I really wanted to ask was",
    "Tomorrow I might go to the",
    "The thing about my job is",
]
MODES = (("on", True), ("off", False))


async def gaze_session(server: ServerProcess, user: str, gaze: bool) -> Client:
    from bench.voice_turns_client import session

    c = await session(server, user)
    update = {"output_audio": "none", "turn_detection": {"type": "semantic", "gaze": gaze}}
    await c.ws.send({"type": "session.update", "session": update})
    ev = await c.until(lambda e: e["type"] == "session.updated", 10)
    assert ev is not None and ev["session"]["turn_detection"]["gaze"] is gaze, ev
    return c


async def paused(server: ServerProcess, i: int, pairs: list, gaze: bool) -> list[str]:
    """A sentence with a thinking pause, looking away through it: the transcripts."""
    from bench.voice_turns_rows import paused_trial
    from tests.face_cam import FaceCam
    from tests.mic import Mic

    c = await gaze_session(server, f"gaze-paused-{gaze}", gaze)
    async with Mic(c.ws, seed=i) as mic, FaceCam(c.ws, mic, seed=i) as cam:

        def look(a_start: int, a_end: int, b_start: int) -> None:
            # from the middle of the first half until 300 ms into the second
            cam.look_away((a_start + a_end) // 2, b_start + 300 * 16)

        await c.drain(1.0)  # the face is seen looking at the screen first
        a, b = pairs[i % len(pairs)]
        finals = await paused_trial(c, mic, a, b, 600 + 100 * (i % 4), look)
    await c.ws.conn.close()
    return finals


async def look_back(server: ServerProcess, i: int, texts: list[str], gaze: bool) -> float | None:
    """Looking away while speaking, back at the screen as the words end: the server's
    end of speech -> end of turn (None: no reply came)."""
    from bench.voice_turns_client import cancel
    from tests.face_cam import FaceCam
    from tests.mic import Mic
    from tests.speech import speak, speech_offset_ms

    c = await gaze_session(server, f"gaze-back-{gaze}", gaze)
    took = None
    async with Mic(c.ws, seed=i) as mic, FaceCam(c.ws, mic, seed=i) as cam:
        await c.drain(1.0)
        audio = speak(texts[i % len(texts)])
        start, _ = mic.say(audio, 400)
        eos = start + int(speech_offset_ms(audio) * 16)
        cam.look_away(start + 300 * 16, eos)
        ev = await c.until(lambda e: e["type"] == "response.created", 30)
        if ev is not None:
            rid = ev["response_id"]
            await cancel(c, mic, rid)
            done = [e for e in c.of("response.done") if e["response_id"] == rid]
            took = (done[0].get("timings") or {}).get("eos_to_turn_ms") if done else None
    await c.ws.conn.close()
    return took


async def run(server: ServerProcess, n: int) -> dict[str, Any]:
    """n trials per row and mode, on and off taking turns (a fresh session each), so the
    machine's load falls on both alike."""
    from bench.turn_phrases import EN, PAUSED

    out: dict[str, Any] = {
        mode: {"paused_unfinished": [], "paused_finished": [], "complete": [], "ambiguous": []}
        for mode, _ in MODES
    }
    for i in range(n):
        for mode, gaze in MODES if i % 2 == 0 else MODES[::-1]:
            o = out[mode]
            o["paused_unfinished"].append(await paused(server, i, PAUSED, gaze))
            o["paused_finished"].append(await paused(server, i, PAUSED_DONE, gaze))
            o["complete"].append(await look_back(server, i, EN, gaze))
            o["ambiguous"].append(await look_back(server, i, AMBIGUOUS, gaze))
    return out


def table(res: dict[str, Any]) -> str:
    """Row, gaze on, gaze off, n."""
    rows: list[tuple[str, str, str, str]] = []
    for key, label in (
        ("paused_unfinished", "paused, unfinished first half, looking away: cut in two"),
        ("paused_finished", "paused, finished-sounding first half, looking away: cut"),
    ):
        on, off = res["on"][key], res["off"][key]
        cut_on, cut_off = sum(len(t) > 1 for t in on), sum(len(t) > 1 for t in off)
        rows.append((label, f"{cut_on}", f"{cut_off}", f"{len(on)} / {len(off)}"))
    for key, label in (
        ("complete", "complete sentence, looks back at the end: eos_to_turn p50/p95 ms"),
        ("ambiguous", "ambiguous ending, looks back at the end: eos_to_turn p50/p95 ms"),
    ):
        on = [v for v in res["on"][key] if v is not None]
        off = [v for v in res["off"][key] if v is not None]
        rows.append((label, p50_p95(on), p50_p95(off), f"{len(on)} / {len(off)}"))
    w = max(len(r[0]) for r in rows) + 2
    lines = [f"{'gaze in turn taking':<{w}}{'gaze on':<14}{'gaze off':<14}n (on / off)"]
    lines.append("-" * (w + 40))
    lines += [f"{a:<{w}}{b:<14}{c:<14}{d}" for a, b, c, d in rows]
    return "\n".join(lines)
