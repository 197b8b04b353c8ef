"""`turn_detection.barge_in: false` over /v1/ws (docs/protocol.md): speech over a playing
reply is heard but never cancels it; its transcript and reply come once the reply played."""

from __future__ import annotations

from server.turns.rules import words
from tests.fakes.openai_server import FakeOpenAI
from tests.mic import Mic
from tests.server_harness import ServerThread, open_ws
from tests.speech import speak


async def test_barge_in_false_lets_the_reply_play_out(
    stt_ready: ServerThread, turn_llm: FakeOpenAI
) -> None:
    ws = await open_ws(stt_ready, persona="emma", token="nobarge")
    await ws.wait_for("session.created")
    td = {"type": "semantic", "barge_in": False}
    await ws.send({"type": "session.update", "session": {"turn_detection": td}})
    assert (await ws.wait_for("session.updated"))["session"]["turn_detection"] == td
    async with Mic(ws) as mic:
        turn_llm.queue_reply("Sentence one is here. Sentence two is here. Sentence three is here.")
        await ws.send({"type": "input_text", "text": "Say three things."})
        rid = (await ws.wait_for("response.created", timeout=20))["response_id"]
        while rid not in mic.played:
            await ws.next_event(timeout=20)
        turn_llm.queue_reply("Sunny.")
        mic.say(speak("What is the weather going to be like tomorrow in Paris?"), 200)
        await ws.wait_for("input_audio.speech_started", timeout=30)
        done = await ws.wait_for("response.done", response_id=rid, timeout=30)
        assert done["status"] == "completed"
        said = await ws.wait_for("transcript.done", timeout=30)
        assert {"tomorrow", "paris"} & set(words(said["text"])) and said["_t"] >= done["_t"]
        nxt = await ws.wait_for("response.created", timeout=30)
        assert nxt["response_id"] != rid
