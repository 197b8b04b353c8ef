"""Turn taking as an OpenAI Realtime client sees it (the official SDK's realtime client,
unchanged): a mic appending PCM16 24 kHz on a real-time schedule, with real models. The
client plays reply audio itself and only says how much it played when it cuts it
(`conversation.item.truncate`), so the server judges speech over a reply for as long as its
audio plays, not only while it is generated."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import httpx
import numpy as np
from openai import AsyncOpenAI

from server.turns.rules import words
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread
from tests.speech import speak
from tests.turns.test_over_reply_e2e import REPLY

RATE = 24_000
CHUNK = RATE // 10  # 100 ms appends, as an app sends them


class RealtimeMic:
    """Reads every event into ``seen`` and appends the mic (faint noise, then the queued
    speech) every 100 ms of wall time."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.seen: list[Any] = []
        self.queue = np.zeros(0, np.float32)
        self.rng = np.random.default_rng(0)
        self.arrived = asyncio.Event()

    async def __aenter__(self) -> RealtimeMic:
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._append())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def say(self, text: str, gap_ms: int = 300) -> None:
        audio = speak(text, rate=RATE)
        self.queue = np.concatenate((self.queue, np.zeros(RATE * gap_ms // 1000), audio))

    async def _read(self) -> None:
        async for ev in self.conn:
            self.seen.append(ev)
            self.arrived.set()

    async def _append(self) -> None:
        loop = asyncio.get_running_loop()
        t = loop.time()
        while True:
            chunk, self.queue = self.queue[:CHUNK], self.queue[CHUNK:]
            chunk = np.pad(chunk, (0, CHUNK - chunk.size))
            chunk = chunk + self.rng.normal(0, 0.001, CHUNK)
            pcm = (np.clip(chunk, -1, 1) * 32767).round().astype("<i2").tobytes()
            await self.conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
            t += 0.1
            await asyncio.sleep(max(0.0, t - loop.time()))

    def of(self, type_: str) -> list[Any]:
        return [e for e in self.seen if e.type == type_]

    async def wait(self, type_: str, n: int = 1, timeout: float = 30) -> Any:
        """The n-th event of this type."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.of(type_)) < n:
                    self.arrived.clear()
                    await self.arrived.wait()
        except TimeoutError:
            raise AssertionError(f"no {type_} #{n}: {[e.type for e in self.seen]}") from None
        return self.of(type_)[n - 1]

    async def quiet(self, seconds: float) -> None:
        """Let the queued speech play out, then ``seconds`` more."""
        await asyncio.sleep(self.queue.size / RATE + seconds)


def connect(srv: ServerThread, token: str) -> Any:
    client = AsyncOpenAI(base_url=f"{srv.url}/v1", api_key=token)
    return client.realtime.connect(model="emma")


async def ask(mic: RealtimeMic, text: str) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await mic.conn.conversation.item.create(item=item)
    await mic.conn.response.create()


async def test_backchannels_while_the_client_plays_the_reply_are_not_speech_started(
    stt_ready: ServerThread, turn_llm: FakeOpenAI
) -> None:
    """response.done comes when the reply is generated, long before the client has played
    it: "yeah" over the rest of it must not be a speech_started (a Realtime client stops
    playback there); "wait, stop" is, and the truncate after it is answered."""
    async with connect(stt_ready, "rt-bc") as conn, RealtimeMic(conn) as mic:
        await mic.wait("session.created")
        # a long reply: its audio plays well beyond its generation, even on a loaded machine
        turn_llm.queue_reply(f"{REPLY} {REPLY}", token_ms=5)
        await ask(mic, "Please talk for a while.")
        done = await mic.wait("response.done", timeout=60)
        assert done.response.status == "completed"
        item_id = done.response.output[0].id
        played_from = asyncio.get_running_loop().time()
        mic.say("Yeah.", 300)  # one: a joined "yeah ... okay" stretch is the judge's own test
        await mic.quiet(1.5)
        assert mic.of("input_audio_buffer.speech_started") == [], [e.type for e in mic.seen]
        assert mic.of("conversation.item.input_audio_transcription.completed") == []
        turn_llm.queue_reply("Sure, I will stop.")
        mic.say("Wait, stop please.", 300)
        await mic.wait("input_audio_buffer.speech_started", timeout=30)
        heard_ms = int((asyncio.get_running_loop().time() - played_from) * 1000)
        await conn.conversation.item.truncate(
            item_id=item_id, content_index=0, audio_end_ms=heard_ms
        )
        truncated = await mic.wait("conversation.item.truncated")
        assert (truncated.item_id, truncated.audio_end_ms) == (item_id, heard_ms)
        # the client stopped playing: the echo canceller's reference of the reply stops too
        # (it ran on to the reply's end, ~40 s here: AEC3 then took the user's next words
        # as double talk over an echo no speaker played)
        voice_in = stt_ready.services.live_sessions.perception_for("rt-bc").voice_in
        assert voice_in.echo is not None
        assert not voice_in.echo.active(voice_in.received + 2 * 16_000)
        sid = mic.of("session.created")[0].session.id
        async with httpx.AsyncClient(base_url=stt_ready.url) as http:
            got = await http.get(
                f"/v1/sessions/{sid}/messages", headers={"Authorization": "Bearer rt-bc"}
            )
        stored = [m["content"] for m in got.json()["messages"] if m["role"] == "assistant"]
        # only what was heard: the first sentences of the reply, not all eight
        assert stored and REPLY.startswith(stored[0]) and 0 < len(stored[0]) < len(REPLY) / 2
        said = await mic.wait("conversation.item.input_audio_transcription.completed", timeout=30)
        assert {"wait", "stop"} & set(words(said.transcript)), said
        assert (await mic.wait("response.done", 2, timeout=30)).response.status == "completed"


async def test_interrupt_response_false_lets_the_reply_finish(
    stt_ready: ServerThread, turn_llm: FakeOpenAI
) -> None:
    """`interrupt_response: false`: speech over a reply is still heard (speech_started,
    its transcript) but does not cancel it; its reply starts after the first one's done."""
    async with connect(stt_ready, "rt-ni") as conn, RealtimeMic(conn) as mic:
        await mic.wait("session.created")
        detection = {"type": "server_vad", "interrupt_response": False, "silence_duration_ms": 500}
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}}
        )
        td = (await mic.wait("session.updated")).session.audio.input.turn_detection
        assert (td.type, td.interrupt_response, td.create_response) == ("server_vad", False, True)
        turn_llm.queue_reply(REPLY, token_ms=60)  # generated for several seconds
        await ask(mic, "Please talk for a while.")
        first = (await mic.wait("response.created")).response.id
        turn_llm.queue_reply("Tomorrow is sunny.")
        mic.say("What is the weather going to be like tomorrow in Paris?", 200)
        await mic.wait("input_audio_buffer.speech_started", timeout=30)
        said = await mic.wait("conversation.item.input_audio_transcription.completed", timeout=30)
        assert "weather" in said.transcript.lower()
        done = await mic.wait("response.done", timeout=60)
        assert (done.response.id, done.response.status) == (first, "completed")
        second = await mic.wait("response.done", 2, timeout=60)
        assert second.response.status == "completed" and second.response.id != first
        created = mic.of("response.created")
        assert mic.seen.index(created[1]) > mic.seen.index(done)


async def test_beta_shape_turn_detection(stt_ready: ServerThread) -> None:
    """A client of the beta API puts turn_detection at the top of the session object."""
    async with connect(stt_ready, "rt-beta") as conn, RealtimeMic(conn) as mic:
        await mic.wait("session.created")
        await conn.session.update(
            session={"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}  # type: ignore[typeddict-item]
        )
        updated = (await mic.wait("session.updated")).session
        td = updated.audio.input.turn_detection
        assert (td.type, td.eagerness, td.interrupt_response) == ("semantic_vad", "high", True)
        # the transcription events always come: the session says so
        assert updated.audio.input.transcription.language == "en"
        await conn.session.update(session={"turn_detection": {"type": "near_field"}})  # type: ignore[typeddict-item]
        error = await mic.wait("error")
        assert error.error.code == "unsupported_event" and "semantic_vad" in error.error.message


async def test_a_voice_turns_events_come_in_the_realtime_order(
    stt_ready: ServerThread, turn_llm: FakeOpenAI
) -> None:
    """After a typed exchange, a spoken turn: speech_started, speech_stopped, committed and
    the user item added (each naming the item before it), transcription deltas only for an
    item the client has been told of, completed, the item done, then the reply."""
    async with connect(stt_ready, "rt-seq") as conn, RealtimeMic(conn) as mic:
        await mic.wait("session.created")
        turn_llm.queue_reply("Hello.")
        await ask(mic, "Hi there.")
        before = (await mic.wait("response.done")).response.output[0].id
        turn_llm.queue_reply("Foxes are quick.")
        mic.say("The quick brown fox jumps over the lazy dog and runs into the green forest.")
        done = await mic.wait("response.done", 2, timeout=60)
        assert done.response.status == "completed"
    ev = mic.seen
    started = mic.of("input_audio_buffer.speech_started")[0]
    item = started.item_id
    mine = [e for e in ev if getattr(e, "item_id", None) == item or _item(e) == item]
    kinds = [e.type for e in mine]
    assert kinds[:4] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
    ], kinds
    assert kinds[-2:] == [
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.done",
    ], kinds
    assert set(kinds[4:-2]) <= {"conversation.item.input_audio_transcription.delta"}, kinds
    stopped = mine[1]
    assert 0 <= started.audio_start_ms < stopped.audio_end_ms
    assert [mine[i].previous_item_id for i in (2, 3, -1)] == [before] * 3
    reply = mic.of("response.created")[1]
    assert ev.index(mine[-1]) < ev.index(reply)
    # the sentence, not one word of it: on an AVX2-only CPU Whisper heard "brown fox" as
    # "round fucks"
    heard = set(words(mine[-2].transcript))
    assert len(heard & {"quick", "brown", "fox", "jumps", "lazy", "dog", "green", "forest"}) >= 5


def _item(e: Any) -> str | None:
    item = getattr(e, "item", None)
    return getattr(item, "id", None)
