"""Semantic end of turn over the real WebSocket: espeak speech from a real-time mic, the
real VAD, Smart Turn model and Whisper base deciding where the user's turn ends."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from server.turns.latency import STEPS
from tests.fakes.openai_server import FakeOpenAI
from tests.mic import Mic
from tests.server_harness import ServerThread, WsClient, open_ws
from tests.speech import speak

FIRST = "I would like to book a table for two at"
SECOND = "seven in the evening, please."
QUESTION_FIRST = "Could you tell me how long it takes to get to"
QUESTION_SECOND = "the airport from here by train?"


async def session(
    server: ServerThread, user: str, persona: str = "emma", audio: str = "none", **turn: Any
) -> WsClient:
    ws = await open_ws(server, persona=persona, token=user)
    created = (await ws.wait_for("session.created"))["session"]
    assert created["turn_detection"]["type"] == "semantic"  # the default
    update: dict[str, Any] = {"output_audio": audio}
    if turn:
        update["turn_detection"] = turn
    await ws.send({"type": "session.update", "session": update})
    upd = await ws.wait_for("session.updated")
    if turn:
        assert upd["session"]["turn_detection"] == turn
    return ws


async def settle(ws: WsClient, seconds: float) -> None:
    """Keep reading events for a while (the mic keeps streaming room noise)."""
    with contextlib.suppress(TimeoutError):
        await ws.wait_for("never", timeout=seconds)


async def test_complete_sentence_is_answered(stt_ready: ServerThread, turn_llm: FakeOpenAI):
    turn_llm.queue_reply("Of course.")
    ws = await session(stt_ready, "sem1", audio="pcm16")  # the mic plays it, reports it
    async with Mic(ws) as mic:
        mic.say(speak("Could you remind me to call my sister about the trip on Friday?"), 300)
        done = await ws.wait_for("transcript.done", timeout=30)
        assert "sister" in done["text"].lower()
        created = await ws.wait_for("response.created", timeout=30)
        resp = await ws.wait_for("response.done", response_id=created["response_id"], timeout=30)
    assert resp["status"] == "completed"
    assert len(ws.of_type("input_audio.speech_stopped")) == 1
    # the latency the user hears: every step, in the order they happen
    t = resp["timings"]
    steps = [t[k] for k in STEPS]
    assert all(v is not None for v in steps), t
    # (a preemptive start may have asked the model before the turn ended)
    in_order = [t[k] for k in STEPS if k != "eos_to_llm_ms"]
    assert in_order == sorted(in_order) and steps[0] >= 0, t
    assert t["eos_to_llm_ms"] <= t["eos_to_first_token_ms"], t
    # 0 when the words settled it (a question mark: the model is skipped)
    assert t["turn_cpu_ms"] is not None and t["turn_cpu_ms"] >= 0
    # ... stored with the reply, counted in usage, summarised in the report
    sid = ws.of_type("session.created")[0]["session"]["id"]
    async with httpx.AsyncClient(base_url=stt_ready.url) as http:
        msgs = (await http.get(f"/v1/sessions/{sid}/messages?token=sem1")).json()["messages"]
        usage = (await http.get("/v1/usage?token=sem1")).json()
        report = (await http.get(f"/v1/sessions/{sid}/report?token=sem1")).json()
        page = (await http.get(f"/v1/sessions/{sid}/report.html?token=sem1")).text
    reply = next(m for m in msgs if m["role"] == "assistant")
    assert reply["timings"]["eos_to_played_ms"] == t["eos_to_played_ms"]
    assert usage["usage"]["voice_turns"] == 1
    assert usage["usage"]["voice_eos_to_played_n"] == 1
    assert usage["personas"]["emma"]["latency"]["eos_to_played_ms"]["n"] == 1
    played = t["eos_to_played_ms"]
    assert report["voice_latency"]["eos_to_played_ms"] == {"n": 1, "p50": played, "p95": played}
    assert f'data-step="eos_to_played_ms" title="p50 {played:.0f} ms' in page  # and the page


async def test_thinking_pause_does_not_split_the_sentence(stt_ready: ServerThread):
    """The same audio is two turns with a 500 ms silence rule and one with semantic turns;
    so is a question whose first half Whisper ends with "?" ("... to get to?"), and words
    that only hold the floor ("Hold on." then the rest: a complete request as written)."""
    texts = {}
    for mode, a, b in (
        ("server_vad", FIRST, SECOND),
        ("semantic", FIRST, SECOND),
        ("question", QUESTION_FIRST, QUESTION_SECOND),
        ("hold", "Hold on.", "Let me check my calendar first."),
    ):
        ws = await session(
            stt_ready, f"sem2{mode}", type="server_vad" if mode == "server_vad" else "semantic"
        )
        async with Mic(ws) as mic:
            mic.say(speak(a), 300)
            _, end = mic.say(speak(b), 900)  # a 900 ms thinking pause
            await ws.wait_for("transcript.done", timeout=30)
            await settle(ws, (end - mic.now_sample) / 16000 + 2.5)
            if mode == "server_vad" and len(ws.of_type("transcript.done")) < 2:
                await ws.wait_for("transcript.done", timeout=30)  # a slow machine
        texts[mode] = [e["text"] for e in ws.of_type("transcript.done")]
        await ws.conn.close()
    assert len(texts["server_vad"]) == 2, texts
    assert len(texts["semantic"]) == 1, texts
    one = texts["semantic"][0].lower()
    assert "table" in one and "evening" in one
    assert len(texts["question"]) == 1, texts
    question = texts["question"][0].lower()  # Whisper base: "the airport" or "there are parts"
    assert "long" in question and "train" in question
    assert len(texts["hold"]) == 1, texts
    assert "hold" in texts["hold"][0].lower() and "calendar" in texts["hold"][0].lower()


async def test_eagerness_caps_an_unfinished_pause(stt_ready: ServerThread):
    """high eagerness waits at most 2 s, even for words that clearly go on."""
    ws = await session(stt_ready, "sem3", type="semantic", eagerness="high")
    async with Mic(ws) as mic:
        mic.say(speak(FIRST), 300)
        mic.say(speak(SECOND), 3000)
        first = await ws.wait_for("transcript.done", timeout=30)
        second = await ws.wait_for("transcript.done", timeout=30)
    assert "table" in first["text"].lower() and "evening" in second["text"].lower()
    stops = ws.of_type("input_audio.speech_stopped")
    starts = ws.of_type("input_audio.speech_started")
    # the first turn ended inside the 3 s pause: before the second part began
    assert stops[0]["t_ms"] < starts[1]["t_ms"]


async def test_korean_turn_ends_and_is_answered(stt_ready: ServerThread, turn_llm: FakeOpenAI):
    turn_llm.queue_reply("네, 좋아요.")
    ws = await session(stt_ready, "sem4", persona="이서아")
    async with Mic(ws) as mic:
        mic.say(speak("내일 아침에 같이 산책하러 갈까요?", "ko"), 300)
        done = await ws.wait_for("transcript.done", timeout=30)
        created = await ws.wait_for("response.created", timeout=30)
        resp = await ws.wait_for("response.done", response_id=created["response_id"], timeout=30)
    assert done["text"].strip()
    assert resp["status"] == "completed"
    assert len(ws.of_type("input_audio.speech_stopped")) == 1


def trimmed(audio: Any) -> Any:
    """Speech without its leading and trailing quiet (espeak pads a sentence with both)."""
    import numpy as np

    loud = np.flatnonzero(np.abs(audio) > np.abs(audio).max() * 0.02)
    return audio[loud[0] : loud[-1] + 1]


async def test_a_stalled_mic_in_a_short_pause_is_not_the_end_of_the_turn(stt_ready: ServerThread):
    """A finished-sounding sentence, 150 ms of quiet (too short to end a turn), the rest; the
    client's audio stalls for 400 ms in that quiet (a network or machine hiccup), then
    catches up: the frames held back carry the rest, so it is one turn (TURN_STALL_GRACE_MS:
    a stall is not silence)."""
    import numpy as np

    ws = await session(stt_ready, "stall")
    first = trimmed(speak("I went to the market this morning."))
    said = np.concatenate(
        [first, np.zeros(150 * 16, np.float32), trimmed(speak("Then I went home."))]
    )
    async with Mic(ws) as mic:
        start, end = mic.say(said, 300)
        mic.stall(start + first.size + 120 * 16, 400)  # 120 ms into the quiet
        await ws.wait_for("transcript.done", timeout=30)
        await settle(ws, (end - mic.now_sample) / 16000 + 2.0)
    texts = [e["text"].lower() for e in ws.of_type("transcript.done")]
    assert len(texts) == 1, texts
    assert "market" in texts[0] and "home" in texts[0], texts
    await ws.conn.close()


async def test_a_client_that_stops_sending_in_a_pause_still_ends_its_turn(
    stt_ready: ServerThread,
):
    """A script that sends a sentence with 200 ms of trailing silence and then nothing: the
    pause's silence goes on in wall time after the stall grace, so the turn ends."""
    from tests.e2e.test_voice import stream_audio
    from tests.speech import with_silence

    ws = await session(stt_ready, "stopper")
    await stream_audio(
        ws, with_silence(speak("Where is the train station?"), 300, 200), realtime=1.0
    )
    done = await ws.wait_for("transcript.done", timeout=30)
    assert "station" in done["text"].lower(), done
    await ws.conn.close()
