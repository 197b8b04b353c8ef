"""`input_audio_buffer.append` from a client that chunks its audio stream by bytes (a file
or socket read in odd sizes, a 44.1 kHz cookbook chunk of 1,323 bytes): an append may end
inside a PCM16 sample. OpenAI's input buffer is bytes, so the other half comes with the next
append; every odd append was refused here and the speech was lost."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from tests.e2e.test_protocol_realtime import Factory, client, rt, until
from tests.fakes.openai_server import FakeOpenAI
from tests.speech import speak, with_silence


async def test_appends_that_split_samples_are_heard(
    server_factory: Factory, llm: FakeOpenAI, whisper: Path
) -> None:
    srv = server_factory(llm, **rt(stt_model=str(whisper), default_output_audio="none"))
    audio = with_silence(
        speak("The quick brown fox jumps over the lazy dog.", rate=24_000), 300, 1200, rate=24_000
    )
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()
    seen: list[Any] = []
    async with client(srv, "oddie").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        td = {"type": "server_vad", "create_response": False}
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": td}}}
        )
        await until(conn, "session.updated", seen)
        i = 0
        for size in itertools.cycle((1, 4095, 1323, 3)):  # odd sizes: samples split
            if i >= len(pcm):
                break
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + size]).decode())
            i += size
        heard = await until(
            conn, "conversation.item.input_audio_transcription.completed", seen, timeout=60
        )
    assert not [e for e in seen if e.type == "error"], [e for e in seen if e.type == "error"]
    words = set(heard.transcript.lower().replace(".", "").split())
    # five of seven: Whisper on an AVX2-only CPU may hear "brown fox" as "round fucks"
    assert len(words & {"quick", "brown", "fox", "jumps", "over", "lazy", "dog"}) >= 5, heard


async def test_a_user_audio_item_is_transcribed_and_answered(
    server_factory: Factory, llm: FakeOpenAI, whisper: Path
) -> None:
    """conversation.item.create with an input_audio part (the beta JS client's
    sendUserMessageContent of a recorded clip): its words are the user's turn."""
    srv = server_factory(llm, **rt(stt_model=str(whisper), default_output_audio="none"))
    audio = with_silence(speak("Please open the window.", rate=24_000), 200, 200, rate=24_000)
    clip = base64.b64encode((np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes())
    seen: list[Any] = []
    async with client(srv, "clip").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        bad = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "audio": "%"}],
        }
        await conn.conversation.item.create(item=bad)
        assert (await until(conn, "error", seen)).error.code == "invalid_audio"
        part = {"type": "input_audio", "audio": clip.decode()}
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [part]}
        )
        done = await until(conn, "conversation.item.done", seen)
        heard = done.item.content[0].transcript
        assert "window" in heard.lower(), heard
        llm.queue_reply("Opening it.")
        await conn.response.create()
        reply = await until(conn, "response.done", seen)
    assert reply.response.output[0].content[0].text == "Opening it."
    assert llm.chat_requests(mem0=False)[-1]["body"]["messages"][-1]["content"] == heard
