"""Realtime: speech the server announced (input_audio_buffer.speech_started) gets its
speech_stopped (with audio_end_ms) when the client's commit or clear ends it, before the
committed / cleared event, as OpenAI sends them (issue 19). The official SDK's client, a mic
appending at real time, real models."""

from __future__ import annotations

from typing import Any

from tests.server_harness import ServerThread
from tests.turns.test_realtime_turns_e2e import RealtimeMic, connect

SAID = "The quick brown fox jumps over the lazy dog, and the old cat sleeps on the warm mat."


def one_stop_before(mic: RealtimeMic, started: Any, event: Any) -> Any:
    """The one speech_stopped of ``started``'s item, which came before ``event``."""
    stopped = [
        e for e in mic.of("input_audio_buffer.speech_stopped") if e.item_id == started.item_id
    ]
    assert len(stopped) == 1, [e.type for e in mic.seen]
    assert mic.seen.index(stopped[0]) < mic.seen.index(event)
    assert started.audio_start_ms < stopped[0].audio_end_ms
    return stopped[0]


async def test_a_commit_mid_speech_stops_the_speech_before_committed(
    stt_ready: ServerThread,
) -> None:
    async with connect(stt_ready, "rt-cut-commit") as conn, RealtimeMic(conn) as mic:
        await mic.wait("session.created")
        mic.say(SAID)
        started = await mic.wait("input_audio_buffer.speech_started")
        await conn.input_audio_buffer.commit()
        committed = await mic.wait("input_audio_buffer.committed")
        await mic.wait("conversation.item.input_audio_transcription.completed")
    item = started.item_id
    assert committed.item_id == item
    one_stop_before(mic, started, committed)
    assert [e for e in mic.of("input_audio_buffer.committed") if e.item_id == item] == [committed]


async def test_a_clear_mid_speech_stops_the_speech_before_cleared(stt_ready: ServerThread) -> None:
    async with connect(stt_ready, "rt-cut-clear") as conn, RealtimeMic(conn) as mic:
        await mic.wait("session.created")
        mic.say(SAID)
        started = await mic.wait("input_audio_buffer.speech_started")
        await conn.input_audio_buffer.clear()
        cleared = await mic.wait("input_audio_buffer.cleared")
    one_stop_before(mic, started, cleared)
    assert not [e for e in mic.of("input_audio_buffer.committed") if e.item_id == started.item_id]


async def test_turning_turn_detection_off_mid_speech_stops_the_speech(
    stt_ready: ServerThread,
) -> None:
    """speech_stopped before session.updated; nothing committed until the client commits,
    and that commit does not stop the speech again."""
    async with connect(stt_ready, "rt-cut-off") as conn, RealtimeMic(conn) as mic:
        await mic.wait("session.created")
        mic.say(SAID)
        started = await mic.wait("input_audio_buffer.speech_started")
        off = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        await conn.session.update(session=off)
        updated = await mic.wait("session.updated")
        await mic.quiet(0.3)
        await conn.input_audio_buffer.commit()
        committed = await mic.wait("input_audio_buffer.committed")
    one_stop_before(mic, started, updated)
    assert mic.seen.index(updated) < mic.seen.index(committed)
    assert committed.item_id == started.item_id
