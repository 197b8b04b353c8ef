"""Every input_audio.speech_started gets its speech_stopped (issue 19), over a real server
with espeak speech at real time: speech the server announced ends with speech_stopped
whatever ends it (a commit, a switch to push-to-talk, the session ending), not only
the turn detector. A client that lowers the reply's volume or shows "listening" between the
two would otherwise stay stuck."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_voice import LONG, stream_audio
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws
from tests.speech import speak, with_silence


@pytest.fixture
def voice_server(server_factory, llm: FakeOpenAI, whisper: Path) -> ServerThread:
    return server_factory(llm, stt_model=str(whisper), default_output_audio="none")


async def _speaking(server: ServerThread, token: str, kind: str) -> tuple[WsClient, str]:
    """A session in ``kind`` turn detection with the user mid-utterance (announced)."""
    ws = await open_ws(server, persona="emma", token=token)
    await ws.wait_for("session.created")
    await ws.send({"type": "session.update", "session": {"turn_detection": {"type": kind}}})
    await ws.wait_for("session.updated")
    audio = speak(LONG)
    await stream_audio(ws, with_silence(audio[: len(audio) // 2], 300, 0), realtime=1.0)
    started = await ws.wait_for("input_audio.speech_started", timeout=30)
    return ws, started["item_id"]


def _stopped(ws: WsClient, item: str) -> list[dict]:
    return [e for e in ws.of_type("input_audio.speech_stopped") if e["item_id"] == item]


@pytest.mark.parametrize("kind", ["server_vad", "semantic"])
async def test_a_commit_mid_speech_stops_the_speech(voice_server: ServerThread, kind: str):
    ws, item = await _speaking(voice_server, f"commit-{kind}", kind)
    started = ws.of_type("input_audio.speech_started")[-1]
    await ws.send({"type": "input_audio.commit"})
    stopped = await ws.wait_for("input_audio.speech_stopped", timeout=30, item_id=item)
    done = await ws.wait_for("transcript.done", timeout=60, item_id=item)
    assert ws.events.index(stopped) < ws.events.index(done)
    assert started["t_ms"] < stopped["t_ms"]
    assert "fox" in done["text"].lower(), done
    assert len(_stopped(ws, item)) == 1
    await ws.conn.close()


async def test_a_switch_to_push_to_talk_mid_speech_stops_the_speech(voice_server: ServerThread):
    ws, item = await _speaking(voice_server, "switch", "server_vad")
    await ws.send({"type": "session.update", "session": {"turn_detection": {"type": "none"}}})
    stopped = await ws.wait_for("input_audio.speech_stopped", timeout=30, item_id=item)
    await ws.send({"type": "input_audio.commit"})
    done = await ws.wait_for("transcript.done", timeout=60, item_id=item)
    assert "fox" in done["text"].lower(), done
    assert ws.events.index(stopped) < ws.events.index(done)
    assert len(_stopped(ws, item)) == 1  # the commit does not stop it again
    await ws.conn.close()


async def test_the_session_ending_mid_speech_stops_the_speech(voice_server: ServerThread):
    ws, item = await _speaking(voice_server, "end", "server_vad")
    await ws.send({"type": "session.end"})
    ended = await ws.wait_for("session.ended", timeout=30)
    stopped = _stopped(ws, item)
    assert len(stopped) == 1 and ws.events.index(stopped[0]) < ws.events.index(ended)
