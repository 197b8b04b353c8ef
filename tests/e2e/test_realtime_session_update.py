"""`session.update` as OpenAI Realtime clients send it, GA and beta shapes, through the
official SDK's realtime client: every field we read is checked. A wrong type or value gets
an `error` naming the field in `param` (as OpenAI's does), the session is unchanged and the
socket stays open; good values take effect and are echoed in `session.updated`."""

from __future__ import annotations

from typing import Any

from tests.e2e.test_protocol_realtime import Factory, client, rt, say, until
from tests.fakes.openai_server import FakeOpenAI

TD = "session.audio.input.turn_detection"
BETA_TD = "session.turn_detection"


def ga(td: Any) -> dict[str, Any]:
    return {"type": "realtime", "audio": {"input": {"turn_detection": td}}}


def beta(td: Any) -> dict[str, Any]:
    return {"turn_detection": td}


BAD: list[tuple[dict[str, Any], str, str]] = [
    # (session, param, code)
    (ga({"type": "server_vad", "threshold": "high"}), f"{TD}.threshold", "invalid_request_error"),
    (
        beta({"type": "server_vad", "threshold": 1.5}),
        f"{BETA_TD}.threshold",
        "invalid_request_error",
    ),
    (ga({"type": "server_vad", "threshold": True}), f"{TD}.threshold", "invalid_request_error"),
    (
        ga({"type": "server_vad", "silence_duration_ms": "500"}),
        f"{TD}.silence_duration_ms",
        "invalid_request_error",
    ),
    (
        beta({"type": "server_vad", "silence_duration_ms": 50}),
        f"{BETA_TD}.silence_duration_ms",
        "invalid_request_error",
    ),
    (
        ga({"type": "server_vad", "prefix_padding_ms": "x"}),
        f"{TD}.prefix_padding_ms",
        "invalid_request_error",
    ),
    (
        ga({"type": "server_vad", "idle_timeout_ms": -1}),
        f"{TD}.idle_timeout_ms",
        "invalid_request_error",
    ),
    (
        ga({"type": "server_vad", "create_response": "yes"}),
        f"{TD}.create_response",
        "invalid_request_error",
    ),
    (
        beta({"type": "semantic_vad", "interrupt_response": 1}),
        f"{BETA_TD}.interrupt_response",
        "invalid_request_error",
    ),
    (ga({"type": "semantic_vad", "threshold": 0.5}), f"{TD}.threshold", "invalid_request_error"),
    (ga({"type": "semantic_vad", "eagerness": "LOW"}), f"{TD}.eagerness", "invalid_request_error"),
    # a falsy value is no eagerness either (it was taken as "auto")
    (ga({"type": "semantic_vad", "eagerness": ""}), f"{TD}.eagerness", "invalid_request_error"),
    (ga({"type": "semantic_vad", "eagerness": False}), f"{TD}.eagerness", "invalid_request_error"),
    (
        beta({"type": "semantic_vad", "eagerness": 0}),
        f"{BETA_TD}.eagerness",
        "invalid_request_error",
    ),
    (ga({}), TD, "invalid_request_error"),
    (beta("server_vad"), BETA_TD, "invalid_request_error"),
    (ga({"type": "semantic"}), f"{TD}.type", "unsupported_event"),
    ({"type": "realtime", "audio": {"input": 3}}, "session.audio.input", "invalid_request_error"),
    (
        {"type": "realtime", "audio": {"output": {"format": "pcm16"}}},
        "session.audio.output.format",
        "invalid_request_error",
    ),
    (
        {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
        "session.audio.input.format",
        "unsupported_format",
    ),
    ({"type": "transcription"}, "session.type", "unsupported_event"),
    ({"type": "bogus"}, "session.type", "invalid_request_error"),
    ({"input_audio_format": "g711_ulaw"}, "session.input_audio_format", "unsupported_format"),
    ({"output_audio_format": "mp3"}, "session.output_audio_format", "invalid_request_error"),
    (
        {"input_audio_format": {"type": "pcm16"}},
        "session.input_audio_format",
        "invalid_request_error",
    ),
    ({"modalities": ["video"]}, "session.modalities", "invalid_request_error"),
    (
        {"type": "realtime", "output_modalities": ["audio", "text"]},
        "session.output_modalities",
        "invalid_request_error",
    ),
    (
        {"type": "realtime", "max_output_tokens": True},
        "session.max_output_tokens",
        "invalid_request_error",
    ),
    ({"type": "realtime", "instructions": 5}, "session.instructions", "invalid_request_error"),
    (
        {"type": "realtime", "audio": {"output": {"voice": ["alloy"]}}},
        "session.audio.output.voice",
        "invalid_request_error",
    ),
    ({"voice": {"id": 7}}, "session.voice", "invalid_request_error"),
]


async def test_bad_fields_are_named_and_change_nothing(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **rt(default_output_audio="none"))
    seen: list[Any] = []
    async with client(srv, "vera").realtime.connect(model="emma") as conn:
        created = await until(conn, "session.created", seen)
        before = created.session.model_dump()
        for i, (session, param, code) in enumerate(BAD):
            await conn.send({"type": "session.update", "event_id": f"e{i}", "session": session})
            err = await until(conn, "error", seen, timeout=10)
            assert (err.error.code, err.error.param, err.error.event_id) == (code, param, f"e{i}")
            assert err.error.message.startswith(param), err.error.message
        assert not [e for e in seen if e.type == "session.updated"]
        await conn.session.update(session={"type": "realtime"})
        after = (await until(conn, "session.updated", seen)).session.model_dump()
        assert after == before  # none of them changed anything
        llm.queue_reply("Still here.")
        await say(conn, "Are you there?")
        done = await until(conn, "response.done", seen)
    assert done.response.output[0].content[0].text == "Still here."


async def test_good_fields_in_both_shapes_take_effect(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **rt())
    seen: list[Any] = []
    async with client(srv, "wes").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        # the beta API's shape, as a client written for it sends it
        vad = {
            "type": "server_vad",
            "threshold": 0.6,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 800,
            "idle_timeout_ms": None,
            "create_response": True,
            "interrupt_response": False,
        }
        await conn.send(
            {
                "type": "session.update",
                "session": {
                    "modalities": ["text", "audio"],
                    "input_audio_format": "pcm16",
                    "output_audio_format": "pcm16",
                    "voice": "alloy",
                    "turn_detection": vad,
                    "input_audio_transcription": {"model": "whisper-1"},
                },
            }
        )
        s = (await until(conn, "session.updated", seen)).session
        td = s.audio.input.turn_detection
        assert s.output_modalities == ["audio"]
        assert (td.type, td.threshold, td.silence_duration_ms) == ("server_vad", 0.6, 800)
        assert (td.create_response, td.interrupt_response) == (True, False)
        await conn.send({"type": "session.update", "session": {"modalities": ["text"]}})
        assert (await until(conn, "session.updated", seen)).session.output_modalities == ["text"]
        # GA: semantic_vad, and a whole new turn_detection replaces the old one
        semantic = {"type": "semantic_vad", "eagerness": "high", "create_response": False}
        await conn.session.update(session=ga(semantic))
        td = (await until(conn, "session.updated", seen)).session.audio.input.turn_detection
        assert (td.type, td.eagerness, td.create_response, td.interrupt_response) == (
            "semantic_vad",
            "high",
            False,
            True,
        )
        await conn.session.update(session=ga(None))
        assert (
            await until(conn, "session.updated", seen)
        ).session.audio.input.turn_detection is None
    assert not [e for e in seen if e.type == "error"]


async def test_other_events_with_wrong_field_types_get_errors(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    """Wrong types in the other client events were server errors (a traceback in the log):
    now each gets its own error code and the session goes on."""
    srv = server_factory(llm, **rt(default_output_audio="none"))
    seen: list[Any] = []
    bad = [
        ({"type": "input_audio_buffer.append", "audio": 12}, "invalid_audio"),
        ({"type": "input_audio_buffer.append", "audio": ["AAAA"]}, "invalid_audio"),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": ["c"], "output": "{}"},
            },
            "item_not_found",
        ),
    ]
    async with client(srv, "xia").realtime.connect(model="emma") as conn:
        await until(conn, "session.created", seen)
        for event, code in bad:
            await conn.send(event)
            assert (await until(conn, "error", seen, timeout=10)).error.code == code, event
        llm.queue_reply("Fine.")
        await say(conn, "Hello?")
        done = await until(conn, "response.done", seen)
        item = done.response.output[0].id  # the last reply: the client may still play it
        await conn.conversation.item.truncate(item_id=item, content_index=2, audio_end_ms=0)
        assert (await until(conn, "error", seen, timeout=10)).error.code == "invalid_request_error"
    assert done.response.output[0].content[0].text == "Fine."
