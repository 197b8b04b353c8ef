"""OpenAI Realtime clients against the whole server: the official `openai` SDK's realtime
client, unchanged (base_url = our /v1, api_key = the token, model = a persona), over text
and voice (espeak-ng speech in, Whisper base, real VAD), with the fake OpenAI server as our
LLM and espeak-ng as our TTS."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from openai import AsyncOpenAI

from server.turns.rules import words as turn_words
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread
from tests.speech import speak, with_silence

Factory = Callable[..., ServerThread]
RT = {"tts_provider": "espeak", "tts_fallback": False, "default_output_audio": "pcm16"}


def rt(**over: Any) -> dict[str, Any]:
    return RT | over


async def refused(conn: Any) -> Any:
    """The first event of a refused connection: a Realtime error, then the socket closes."""
    ev = await asyncio.wait_for(conn.recv(), 10)
    assert ev.type == "error"
    return ev


def client(srv: ServerThread, token: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{srv.url}/v1", api_key=token)


async def until(conn: Any, type_: str, seen: list[Any], timeout: float = 30) -> Any:
    """Read events (keeping them in ``seen``) up to the first of this type."""
    async with asyncio.timeout(timeout):
        while True:
            ev = await conn.recv()
            seen.append(ev)
            if ev.type == type_:
                return ev


async def say(conn: Any, text: str) -> None:
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await conn.response.create()


async def test_text_turn_with_the_sdk(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, **RT)
    seen: list[Any] = []
    async with client(srv, "rita").realtime.connect(model="emma") as conn:
        created = await until(conn, "session.created", seen)
        assert created.session.model == "emma" and created.session.type == "realtime"
        await conn.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "instructions": "Be brief."}
        )
        updated = await until(conn, "session.updated", seen)
        assert updated.session.output_modalities == ["text"]
        assert updated.session.instructions == "Be brief."
        llm.queue_reply(tokens=["Hello", " Rita", "!"])
        await say(conn, "Hi, I am Rita.")
        done = await until(conn, "response.done", seen)
    types = [e.type for e in seen]
    order = [
        "conversation.item.added",  # the user's item
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    positions = [types.index(t) for t in order]
    assert positions == sorted(positions), types
    deltas = "".join(e.delta for e in seen if e.type == "response.output_text.delta")
    assert deltas == "Hello Rita!"
    ids = [e.event_id for e in seen]  # every server event has an id of its own
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"event_[0-9a-f]{20}", i) for i in ids)
    assert done.response.status == "completed"
    assert done.response.output[0].content[0].text == "Hello Rita!"
    assert done.response.usage.output_tokens > 0
    assert "Be brief." in llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]
    # an ordinary session of ours, stored before response.done
    async with httpx.AsyncClient(
        base_url=srv.url, headers={"Authorization": "Bearer rita"}
    ) as http:
        sessions = (await http.get("/v1/sessions")).json()["sessions"]
        msgs = (await http.get(f"/v1/sessions/{sessions[0]['id']}/messages")).json()["messages"]
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "Hi, I am Rita."),
        ("assistant", "Hello Rita!"),
    ]


async def test_audio_out_is_pcm16_24k_with_transcript(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **RT)
    seen: list[Any] = []
    async with client(srv, "sam").realtime.connect(model="emma") as conn:
        created = await until(conn, "session.created", seen)
        assert created.session.audio.output.format.type == "audio/pcm"
        assert created.session.audio.output.format.rate == 24000
        llm.queue_reply("Kites fly high. The wind is kind today.")
        await say(conn, "Tell me about kites")
        done = await until(conn, "response.done", seen)
        audio = b"".join(
            base64.b64decode(e.delta) for e in seen if e.type == "response.output_audio.delta"
        )
        # a truncate past the audio sent is refused as OpenAI does; within it, it is done
        item, audio_ms = done.response.output[0].id, len(audio) // 48
        await conn.conversation.item.truncate(
            item_id=item, content_index=0, audio_end_ms=audio_ms + 500
        )
        err = await until(conn, "error", seen)
        assert err.error.code == "invalid_value" and "is already shorter than" in err.error.message
        await conn.conversation.item.truncate(item_id=item, content_index=0, audio_end_ms=audio_ms)
        assert (await until(conn, "conversation.item.truncated", seen)).audio_end_ms == audio_ms
    pcm = np.frombuffer(audio, dtype="<i2")
    assert len(pcm) / 24_000 > 1.0 and np.abs(pcm).max() > 1000
    transcript = "".join(
        e.delta for e in seen if e.type == "response.output_audio_transcript.delta"
    )
    assert transcript == "Kites fly high. The wind is kind today."
    assert done.response.output[0].content[0].transcript == transcript
    assert [e.type for e in seen].index("response.output_audio.done") < [
        e.type for e in seen
    ].index("response.done")


async def test_cancel_resume_and_isolation(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, **rt(default_output_audio="none"))
    seen: list[Any] = []
    async with client(srv, "tom").realtime.connect(model="emma") as conn:
        created = await until(conn, "session.created", seen)
        sid = created.session.id
        llm.queue_reply(tokens=[f"w{i} " for i in range(300)], token_ms=20)
        await say(conn, "Tell me a long story")
        await until(conn, "response.output_text.delta", seen)
        await conn.response.cancel()
        done = await until(conn, "response.done", seen)
        assert done.response.status == "cancelled"
        assert len(done.response.output[0].content[0].text.split()) < 300
        await conn.response.cancel()  # nothing to cancel now: an error, the socket stays
        err = await until(conn, "error", seen)
        assert err.error.code == "response_cancel_not_active"
        llm.queue_reply("I remember: kites.")
        await say(conn, "My hobby is kites.")
        await until(conn, "response.done", seen)
    # resume the same conversation (our extension: ?session_id=)
    seen2: list[Any] = []
    async with client(srv, "tom").realtime.connect(
        model="emma", extra_query={"session_id": sid}
    ) as conn:
        again = await until(conn, "session.created", seen2)
        assert again.session.id == sid
        llm.queue_reply("Kites, you said.")
        await say(conn, "What is my hobby?")
        await until(conn, "response.done", seen2)
    contents = [m["content"] for m in llm.chat_requests(mem0=False)[-1]["body"]["messages"]]
    assert "My hobby is kites." in contents
    # another user cannot resume it: the same answer as an unknown id
    async with client(srv, "eve").realtime.connect(
        model="emma", extra_query={"session_id": sid}
    ) as conn:
        assert (await refused(conn)).error.code == "session_not_found"


async def test_unsupported_and_bad_events_get_realtime_errors(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **rt(default_output_audio="none"))
    seen: list[Any] = []
    async with client(srv, "uma").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        bad: list[tuple[dict[str, Any], str]] = [
            (
                {"type": "conversation.item.delete", "item_id": "x", "event_id": "e1"},
                "item_delete_invalid_item_id",
            ),
            ({"type": "output_audio_buffer.clear"}, "unsupported_event"),
            ({"type": "response.create"}, "invalid_request_error"),
            ({"type": "input_audio_buffer.append", "audio": "%%%"}, "invalid_audio"),
            (
                {
                    "type": "session.update",
                    "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}},
                },
                "unsupported_format",
            ),
            (
                {
                    "type": "session.update",
                    "session": {"audio": {"input": {"turn_detection": {"type": "near_vad"}}}},
                },
                "unsupported_event",
            ),
            (
                {
                    "type": "session.update",
                    "session": {
                        "audio": {
                            "input": {"turn_detection": {"type": "semantic_vad", "eagerness": "x"}}
                        }
                    },
                },
                "invalid_request_error",
            ),
            (
                {"type": "conversation.item.create", "item": {"type": "function_call"}},
                "unsupported_event",
            ),
            (
                {
                    "type": "conversation.item.truncate",
                    "item_id": "nope",
                    "content_index": 0,
                    "audio_end_ms": 5,
                },
                "item_not_found",
            ),
            # a truncate without a string item_id is malformed, not about an unknown item
            (
                {"type": "conversation.item.truncate", "content_index": 0, "audio_end_ms": 5},
                "invalid_request_error",
            ),
            (
                {
                    "type": "conversation.item.truncate",
                    "item_id": 7,
                    "content_index": 0,
                    "audio_end_ms": 5,
                },
                "invalid_request_error",
            ),
        ]
        for event, code in bad:
            await conn.send(event)
            err = await until(conn, "error", seen, timeout=10)
            assert err.error.code == code, (event, err)
        first_error = next(e for e in seen if e.type == "error")
        assert first_error.error.event_id == "e1"
        # function calling: forcing a call, and output for a call that was never made
        await conn.session.update(session={"type": "realtime", "tool_choice": "required"})
        err = await until(conn, "error", seen, timeout=10)
        assert err.error.code == "unsupported_event"
        output = {"type": "function_call_output", "call_id": "call_nope", "output": "{}"}
        await conn.conversation.item.create(item=output)
        err = await until(conn, "error", seen, timeout=10)
        assert err.error.code == "item_not_found"
        await conn.send_raw("{not json")
        err = await until(conn, "error", seen, timeout=10)
        assert err.error.code == "invalid_json"
        llm.queue_reply("Still fine.")
        await say(conn, "Are you there?")
        done = await until(conn, "response.done", seen)
        assert done.response.output[0].content[0].text == "Still fine."


async def test_function_calling_with_the_sdk(server_factory: Factory, llm: FakeOpenAI) -> None:
    """The client's own functions, as the SDK declares and answers them: the model calls
    one, the client runs it and sends function_call_output, response.create continues the
    turn with the result; the persona's own tools stay available beside them."""
    srv = server_factory(llm, **rt(default_output_audio="none"))
    seen: list[Any] = []
    weather = {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    async with client(srv, "fay").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        await conn.session.update(
            session={"type": "realtime", "tools": [weather], "tool_choice": "auto"}
        )
        updated = await until(conn, "session.updated", seen)
        assert [t.name for t in updated.session.tools] == ["get_weather"]
        llm.queue_reply(
            "Let me look.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]
        )
        await say(conn, "What is the weather in Paris?")
        args = await until(conn, "response.function_call_arguments.done", seen)
        first = await until(conn, "response.done", seen)
        assert (args.name, json.loads(args.arguments)) == ("get_weather", {"city": "Paris"})
        call = first.response.output[1]
        assert (call.type, call.call_id, call.status) == (
            "function_call",
            args.call_id,
            "completed",
        )
        assert first.response.output[0].content[0].text == "Let me look."
        offered = llm.chat_requests(mem0=False)[-1]["body"]["tools"]
        names = {t["function"]["name"] for t in offered}
        assert "get_weather" in names and len(names) > 1  # ours are still there
        # the client runs it and answers; the turn goes on with the result
        llm.queue_reply("It is sunny and 21 degrees in Paris.")
        out = {"type": "function_call_output", "call_id": args.call_id, "output": '{"c": 21}'}
        await conn.conversation.item.create(item=out)
        await until(conn, "conversation.item.done", seen)
        await conn.response.create()
        second = await until(conn, "response.done", seen)
    assert second.response.output[0].content[0].text == "It is sunny and 21 degrees in Paris."
    msgs = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    tool_msgs = [m for m in msgs if m["role"] == "tool"]
    assert tool_msgs[-1]["content"] == '{"c": 21}'
    assert tool_msgs[-1]["tool_call_id"] == args.call_id
    called = [m for m in msgs if m["role"] == "assistant" and m.get("tool_calls")]
    assert called[-1]["tool_calls"][0]["function"]["name"] == "get_weather"
    # stored as an ordinary conversation: the question, both replies, the function line
    async with httpx.AsyncClient(base_url=srv.url, headers={"Authorization": "Bearer fay"}) as h:
        sid = (await h.get("/v1/sessions")).json()["sessions"][0]["id"]
        stored = (await h.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "What is the weather in Paris?"),
        ("assistant", "Let me look."),
        ("system", "[functions get_weather]"),
        ("assistant", "It is sunny and 21 degrees in Paris."),
    ]


async def test_wrong_token_is_refused(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, **RT, auth_tokens="tok-a:alice")
    async with client(srv, "nope").realtime.connect(model="emma") as conn:
        assert (await refused(conn)).error.code == "invalid_api_key"
    seen: list[Any] = []
    async with client(srv, "tok-a").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)


async def test_voice_turn_with_server_vad(
    server_factory: Factory, llm: FakeOpenAI, whisper: Path
) -> None:
    srv = server_factory(llm, **rt(stt_model=str(whisper)))
    seen: list[Any] = []
    audio = with_silence(
        speak("The quick brown fox jumps over the lazy dog.", rate=24_000), 400, 1200, rate=24_000
    )
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()
    async with client(srv, "val").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        # twice: a reply started early on the pause's quick words is discarded (and takes
        # one) when the final words differ ("The quick" / "A quick")
        llm.queue_reply("Foxes are quick.")
        llm.queue_reply("Foxes are quick.")
        for i in range(0, len(pcm), 9600):  # 200 ms chunks, as an app would append them
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + 9600]).decode())
        await until(conn, "input_audio_buffer.speech_started", seen, timeout=60)
        await until(conn, "input_audio_buffer.speech_stopped", seen, timeout=60)
        await until(conn, "input_audio_buffer.committed", seen, timeout=60)
        heard = await until(
            conn, "conversation.item.input_audio_transcription.completed", seen, timeout=60
        )
        words = set(heard.transcript.lower().replace(".", "").split())
        assert len(words & {"quick", "brown", "fox", "over", "lazy", "dog"}) >= 5, [
            (e.type, getattr(e, "delta", None) or getattr(e, "error", None)) for e in seen
        ]
        # OpenAI's usage of a transcription: the seconds of audio transcribed (it was 0)
        assert heard.usage.type == "duration", heard.usage
        assert 1.0 < heard.usage.seconds <= len(audio) / 24_000, heard.usage
        done = await until(conn, "response.done", seen, timeout=60)
    assert done.response.status == "completed"
    assert done.response.output[0].content[0].transcript == "Foxes are quick."
    asked = llm.chat_requests(mem0=False)[-1]["body"]["messages"][-1]["content"]
    assert turn_words(asked) == turn_words(heard.transcript)  # case and punctuation aside


async def test_semantic_vad_keeps_a_thinking_pause_in_one_turn(
    server_factory: Factory, llm: FakeOpenAI, whisper: Path
) -> None:
    """semantic_vad with eagerness maps to our semantic end of turn: "... a table for two
    at" [900 ms] "seven in the evening" is one user turn (server_vad at 500 ms cuts it)."""
    srv = server_factory(llm, **rt(stt_model=str(whisper), default_output_audio="none"))
    first = speak("I would like to book a table for two at", rate=24_000)
    second = speak("seven in the evening, please.", rate=24_000)
    pause = np.zeros(24_000 * 9 // 10, dtype=np.float32)
    audio = with_silence(np.concatenate((first, pause, second)), 300, 1500, rate=24_000)
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()
    seen: list[Any] = []
    async with client(srv, "sem").realtime.connect(model="emma") as conn:
        created = await until(conn, "session.created", seen)
        assert created.session.audio.input.turn_detection.type == "server_vad"  # as OpenAI's
        detection = {"type": "semantic_vad", "eagerness": "low"}
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}}
        )
        updated = await until(conn, "session.updated", seen)
        td = updated.session.audio.input.turn_detection
        assert (td.type, td.eagerness, td.create_response) == ("semantic_vad", "low", True)
        llm.queue_reply("Booked.")
        for i in range(0, len(pcm), 9600):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + 9600]).decode())
        heard = await until(
            conn, "conversation.item.input_audio_transcription.completed", seen, timeout=60
        )
        done = await until(conn, "response.done", seen, timeout=60)
    assert "table" in heard.transcript.lower() and "evening" in heard.transcript.lower()
    assert len([e for e in seen if e.type == "input_audio_buffer.speech_stopped"]) == 1
    assert done.response.status == "completed"


async def test_push_to_talk_commit_then_response_create(
    server_factory: Factory, llm: FakeOpenAI, whisper: Path
) -> None:
    srv = server_factory(llm, **rt(stt_model=str(whisper), default_output_audio="none"))
    seen: list[Any] = []
    audio = with_silence(speak("Please open the window.", rate=24_000), 200, 200, rate=24_000)
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()
    async with client(srv, "wes").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        )
        updated = await until(conn, "session.updated", seen)
        assert updated.session.audio.input.turn_detection is None
        # speech appended, then cleared: none of it may reach the next commit, also the
        # frames still queued for the audio worker when the clear arrives
        other = speak("Forget about the garden hose.", rate=24_000)
        forget = (np.clip(other, -1, 1) * 32767).round().astype("<i2").tobytes()
        for i in range(0, len(forget), 4800):  # 100 ms appends, as a mic sends them
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(forget[i : i + 4800]).decode()
            )
        await conn.input_audio_buffer.clear()
        await until(conn, "input_audio_buffer.cleared", seen)
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
        await conn.input_audio_buffer.commit()
        committed = await until(conn, "input_audio_buffer.committed", seen)
        heard = await until(
            conn, "conversation.item.input_audio_transcription.completed", seen, timeout=60
        )
        assert heard.item_id == committed.item_id and "window" in heard.transcript.lower()
        assert not {"garden", "hose"} & set(heard.transcript.lower().split()), heard
        assert not [e for e in seen if e.type == "response.created"]  # no reply until asked
        llm.queue_reply("Opening it.")
        await conn.response.create()
        done = await until(conn, "response.done", seen)
        assert done.response.output[0].content[0].text == "Opening it."
        await conn.input_audio_buffer.commit()  # nothing buffered now
        assert (await until(conn, "error", seen)).error.code == "input_audio_buffer_commit_empty"


async def test_a_proactive_response_says_its_trigger_in_metadata(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    """The persona speaks first (an app's webhook): the unsolicited response carries
    metadata.trigger on response.created and response.done."""
    srv = server_factory(llm, proactive_tick_s=0.05, proactive_cooldown_s=0.0, **RT)
    seen: list[Any] = []
    async with client(srv, "pia").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        llm.queue_reply("You have new mail from Mina.")
        async with httpx.AsyncClient(base_url=srv.url) as http:
            r = await http.post(
                "/v1/proactive/trigger",
                json={"reason": "new mail from Mina"},
                headers={"Authorization": "Bearer pia"},
            )
        assert r.status_code == 200, r.text
        created = await until(conn, "response.created", seen)
        done = await until(conn, "response.done", seen)
    assert created.response.metadata == {"trigger": "webhook"}
    assert done.response.metadata == {"trigger": "webhook"}
    assert done.response.status == "completed"
