"""The camera in turn taking, over the real WebSocket: espeak speech from a real-time mic
and a real face's MediaPipe landmarks (0x04 frames, tests/face_cam.py) looking at the screen
or away, through the server's face tracker, VAD, Smart Turn model and Whisper.

A first half that sounds finished ("... this morning.") ends the turn after 200 ms of
silence; a user who looks away while saying it is still thinking, so the same audio stays
one turn. The server log shows the decision's gaze."""

from __future__ import annotations

import json

from tests.face_cam import FaceCam
from tests.mic import Mic
from tests.server_harness import ServerThread
from tests.speech import speak
from tests.turns.test_semantic_e2e import session, settle

FIRST = "I went to the shop this morning."
SECOND = "And then I bought some fresh bread."


def log_events(srv: ServerThread, since: int, event: str) -> list[dict]:
    path = srv.settings.log_file
    assert path is not None
    lines = path.read_text(encoding="utf-8").splitlines()[since:]
    return [e for e in map(json.loads, lines) if e.get("event") == event]


def log_size(srv: ServerThread) -> int:
    path = srv.settings.log_file
    assert path is not None
    return len(path.read_text(encoding="utf-8").splitlines())


async def test_looking_away_in_a_pause_keeps_one_turn(stt_ready: ServerThread):
    first, second = speak(FIRST), speak(SECOND)
    texts: dict[bool, list[str]] = {}
    decisions: dict[bool, list[dict]] = {}
    for gaze in (False, True):
        mark = log_size(stt_ready)
        ws = await session(stt_ready, f"gaze-{gaze}", type="semantic", gaze=gaze)
        async with Mic(ws) as mic, FaceCam(ws, mic) as cam:
            a, a_end = mic.say(first, 400)
            b, b_end = mic.say(second, 900)  # a 900 ms thinking pause
            # eyes off the screen from mid-sentence until 300 ms into the second part
            cam.look_away((a + a_end) // 2, b + 300 * 16)
            await ws.wait_for("transcript.done", timeout=30)
            await settle(ws, (b_end - mic.now_sample) / 16000 + 2.5)
        texts[gaze] = [e["text"] for e in ws.of_type("transcript.done")]
        decisions[gaze] = log_events(stt_ready, mark, "turn_decision")
        faces = ws.of_type("analysis.face")
        assert {e["gaze_on_screen"] for e in faces if e.get("face")} == {True, False}, faces
        await ws.conn.close()
    # gaze off: the finished-sounding first half is a turn of its own
    assert len(texts[False]) == 2, texts
    assert not any(d["gaze_away"] for d in decisions[False]), decisions[False]
    # gaze on: the pause was decided while looking away, and the sentence is one turn
    assert len(texts[True]) == 1, texts
    one = texts[True][0].lower()
    assert "shop" in one and "bread" in one
    away = [d for d in decisions[True] if d["gaze_away"]]
    assert away and all(d["wait_ms"] >= 1500 for d in away), decisions[True]
    assert any("morning" in (d["text"] or "").lower() for d in away), away


async def test_looking_back_at_the_end_hands_the_turn_over(stt_ready: ServerThread):
    """Words that sound unfinished wait for more; a user who looked away while saying them
    and looks back at the screen at their end is done: the turn ends after 200 ms."""
    words = speak("I was thinking that maybe")
    ends: dict[bool, list[dict]] = {}
    for gaze in (False, True):
        mark = log_size(stt_ready)
        ws = await session(stt_ready, f"back-{gaze}", type="semantic", gaze=gaze)
        async with Mic(ws) as mic, FaceCam(ws, mic) as cam:
            a, a_end = mic.say(words, 400)
            cam.look_away(a + 200 * 16, a_end - 100 * 16)  # back at the screen at the end
            await ws.wait_for("transcript.done", timeout=30)
        decided = log_events(stt_ready, mark, "turn_decision")
        ends[gaze] = decided + log_events(stt_ready, mark, "turn_gaze_handover")
        await ws.conn.close()
    # gaze off: unfinished words wait (up to the 4 s cap)
    assert ends[False] and ends[False][-1]["wait_ms"] > 200, ends[False]
    assert not any(d.get("looked_back") for d in ends[False])
    # gaze on: the look back ended it, at the decision or while waiting
    handed = [d for d in ends[True] if d.get("looked_back") or d["event"] == "turn_gaze_handover"]
    assert handed, ends[True]
