"""A new `turn_detection` and the values it leaves out. OpenAI Realtime replaces the whole
object: an omitted `silence_duration_ms` is the default again (500 ms), not the value set
before; our VAD must follow what session.updated reports. /v1/ws keeps the values in effect
(docs/protocol.md), and then they are stored and reported, so a resumed session has them."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.e2e.test_protocol_realtime import Factory, client, rt, until
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import open_ws
from tests.speech import speak, with_silence


def ga(td: dict[str, Any]) -> dict[str, Any]:
    return {"type": "realtime", "audio": {"input": {"turn_detection": td}}}


async def test_realtime_server_vad_without_silence_is_the_default_again(
    server_factory: Factory, llm: FakeOpenAI, whisper: Path
) -> None:
    srv = server_factory(llm, **rt(stt_model=str(whisper), default_output_audio="none"))
    first = speak("Hello there.", rate=24_000)
    pause_ms = 1000
    audio = with_silence(
        np.concatenate(
            (first, np.zeros(24 * pause_ms, np.float32), speak("Good morning.", rate=24_000))
        ),
        300,
        1500,
        rate=24_000,
    )
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()
    seen: list[Any] = []
    async with client(srv, "rosa").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        slow = {"type": "server_vad", "silence_duration_ms": 2000, "create_response": False}
        await conn.session.update(session=ga(slow))
        td = (await until(conn, "session.updated", seen)).session.audio.input.turn_detection
        assert td.silence_duration_ms == 2000
        await conn.session.update(session=ga({"type": "server_vad", "create_response": False}))
        td = (await until(conn, "session.updated", seen)).session.audio.input.turn_detection
        assert (td.silence_duration_ms, td.threshold) == (500, 0.5)  # OpenAI's defaults
        for i in range(0, len(pcm), 9600):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + 9600]).decode())
        stopped = await until(conn, "input_audio_buffer.speech_stopped", seen, timeout=60)
    # the 1 s pause after "Hello there." ends the first turn at 500 ms of silence; with the
    # 2000 ms set before still in force it would run on into "Good morning."
    first_end_ms = 300 + len(first) * 1000 // 24_000
    assert stopped.audio_end_ms < first_end_ms + pause_ms, (stopped, first_end_ms)


async def test_ws_turn_detection_keeps_omitted_values_stored(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm)
    ws = await open_ws(srv, token="ines")
    sid = (await ws.wait_for("session.created"))["session"]["id"]
    td = {"type": "server_vad", "silence_ms": 1800, "threshold": 0.7}
    await ws.send({"type": "session.update", "session": {"turn_detection": td}})
    await ws.wait_for("session.updated")
    ws.events.clear()
    change = {"type": "server_vad", "barge_in": False, "silence_ms": None}
    await ws.send({"type": "session.update", "session": {"turn_detection": change}})
    updated = (await ws.wait_for("session.updated"))["session"]["turn_detection"]
    assert updated == td | {"barge_in": False}
    await ws.conn.close()
    again = await open_ws(srv, token="ines", session_id=sid)
    resumed = (await again.wait_for("session.created"))["session"]
    assert resumed["resumed"] and resumed["turn_detection"] == td | {"barge_in": False}
    await again.conn.close()


async def test_ws_semantic_only_fields_need_semantic_turns(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    """`eagerness`, `preemptive` and `gaze` are "semantic only" (docs/protocol.md): on
    server_vad or push-to-talk they would do nothing, so they are an error naming the field
    (as the Realtime adapter's `eagerness` on server_vad is), not stored and echoed back."""
    srv = server_factory(llm)
    ws = await open_ws(srv, token="sem-only")
    created = (await ws.wait_for("session.created"))["session"]["turn_detection"]
    for kind in ("server_vad", "none"):
        for field, value in (("eagerness", "low"), ("preemptive", False), ("gaze", True)):
            td = {"type": kind, field: value}
            await ws.send({"type": "session.update", "session": {"turn_detection": td}})
            err = await ws.wait_for("error")
            assert err["code"] == "invalid_event", err
            assert f"turn_detection.{field}" in err["message"], err
            assert "semantic" in err["message"], err
    await ws.send({"type": "ping", "id": "after"})
    await ws.wait_for("pong", id="after")
    assert not ws.of_type("session.updated")  # none of them changed anything
    await ws.send({"type": "session.update", "session": {}})
    assert (await ws.wait_for("session.updated"))["session"]["turn_detection"] == created
    async with httpx.AsyncClient(base_url=srv.url) as http:  # the user's saved defaults too
        td = {"type": "server_vad", "eagerness": "high"}
        r = await http.put(
            "/v1/settings",
            json={"turn_detection": td},
            headers={"Authorization": "Bearer sem-only"},
        )
        assert r.status_code == 422, r.text
    await ws.conn.close()


async def test_ws_turn_detection_without_type_is_the_servers_default(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    """An omitted `type` is the default, `TURN_DETECTION` (docs/protocol.md), not always
    semantic: a server set to server_vad that gets `{"silence_ms": 700}` stays server_vad."""
    srv = server_factory(llm, turn_detection="server_vad")
    ws = await open_ws(srv, token="no-type")
    created = (await ws.wait_for("session.created"))["session"]["turn_detection"]
    assert created == {"type": "server_vad"}
    await ws.send({"type": "session.update", "session": {"turn_detection": {"silence_ms": 700}}})
    updated = (await ws.wait_for("session.updated"))["session"]["turn_detection"]
    assert updated == {"type": "server_vad", "silence_ms": 700}
    await ws.conn.close()
