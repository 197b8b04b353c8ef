"""The voice loop over a real server: espeak speech in as 20 ms PCM frames, real VAD and
faster-whisper base, replies spoken by the TTS chain (edge-tts is unreachable here, so this
also proves the espeak-ng fallback), barge-in, push-to-talk, voice cloning via Fish."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from server.providers.audio_io import write_wav
from server.turns.preemptive import words as spoken_words
from tests.fakes.fish_server import FakeFish
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws
from tests.speech import pcm16_frames, speak, with_silence

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture
def voice_server(server_factory, llm: FakeOpenAI, whisper: Path) -> ServerThread:
    return server_factory(
        llm,
        stt_model=str(whisper),
        default_output_audio="pcm16",
        stt_partial_interval_ms=400,
    )


async def stream_audio(ws: WsClient, audio: np.ndarray, realtime: float = 0.0) -> None:
    """Send 20 ms frames; realtime=1.0 paces them like a microphone."""
    for frame in pcm16_frames(audio):
        await ws.send_raw(b"\x01" + frame)
        await asyncio.sleep(0.02 * realtime)


def audio_frames(ws: WsClient, number: int) -> list[bytes]:
    out = []
    for b in ws.binary:
        kind, resp, seq = struct.unpack(">BII", b[:9])
        if kind == 0x11 and resp == number:
            out.append((seq, b[9:]))
    seqs = [s for s, _ in out]
    assert seqs == list(range(len(seqs))), "audio chunks arrive in order"
    return [d for _, d in out]


async def finish_playback(ws: WsClient, response_id: str) -> dict:
    """Act like a client that played everything, so the response completes now."""
    done = await ws.wait_for("response.audio.done", response_id=response_id, timeout=30)
    await ws.send(
        {
            "type": "response.audio.played",
            "response_id": response_id,
            "played_ms": done["duration_ms"],
        }
    )
    return done


async def test_spoken_turn_transcribed_answered_and_spoken(
    voice_server: ServerThread, llm: FakeOpenAI
):
    # twice: a reply started on the pause's greedy words that the final words then differ
    # from takes the first and is discarded (TURN_QUICK_WORDS)
    for _ in range(2):
        llm.queue_reply("Foxes are quick indeed. Dogs like to nap in the sun.")
    ws = await open_ws(voice_server, persona="emma", token="vic")
    sess = (await ws.wait_for("session.created"))["session"]
    assert sess["output_audio"] == {"format": "pcm16", "rate": 24000}
    await stream_audio(ws, with_silence(speak(SENTENCE), 400, 1200), realtime=0.25)
    started = await ws.wait_for("input_audio.speech_started", timeout=30)
    stopped = await ws.wait_for("input_audio.speech_stopped", timeout=30)
    assert 250 <= started["t_ms"] <= 700 and stopped["t_ms"] > started["t_ms"] + 1500
    done = await ws.wait_for("transcript.done", timeout=60)
    words = set(done["text"].lower().replace(".", "").replace(",", "").split())
    assert len(words & {"quick", "brown", "fox", "over", "lazy", "dog"}) >= 5, done
    created = await ws.wait_for("response.created", timeout=30)
    audio_done = await finish_playback(ws, created["response_id"])
    resp = await ws.wait_for("response.done", timeout=30)
    assert resp["status"] == "completed"
    assert resp["text"] == "Foxes are quick indeed. Dogs like to nap in the sun."
    assert resp["timings"]["ttfa_ms"] is not None
    assert resp["timings"]["ttfa_ms"] >= resp["timings"]["ttft_ms"]
    chunks = audio_frames(ws, int(created["response_id"].split("_")[1]))
    assert len(chunks) == audio_done["chunks"] >= 2
    pcm = np.frombuffer(b"".join(chunks), dtype="<i2")
    assert abs(len(pcm) / 24 - audio_done["duration_ms"]) < 5
    assert np.abs(pcm).max() > 1000  # real speech, not silence
    # the fallback was announced once and health shows it
    warnings = ws.of_type("warning")
    assert [w["code"] for w in warnings] == ["tts_degraded"]
    async with httpx.AsyncClient(base_url=voice_server.url) as http:
        health = (await http.get("/health")).json()
        msgs = (await http.get(f"/v1/sessions/{sess['id']}/messages?token=vic")).json()["messages"]
    assert health["modules"]["tts"] == "degraded" and health["modules"]["stt"] == "ready"
    assert msgs[0]["role"] == "user" and msgs[0]["content"] == done["text"]
    # the transcript became the persona's input
    asked = llm.chat_requests(mem0=False)[-1]["body"]["messages"][-1]["content"]
    assert spoken_words(asked) == spoken_words(done["text"])  # a kept start: punctuation aside


async def test_partials_come_before_the_final_transcript(voice_server: ServerThread):
    long = speak(
        "I went to the market this morning to buy apples, oranges, bread and fresh milk "
        "for the whole family."
    )
    ws = await open_ws(voice_server, persona="emma", token="wes")
    await ws.wait_for("session.created")
    await ws.send({"type": "session.update", "session": {"output_audio": "none"}})
    await stream_audio(ws, with_silence(long, 300, 1000), realtime=1.0)
    final = await ws.wait_for("transcript.done", timeout=60)
    partials = [e for e in ws.of_type("transcript.delta") if e["item_id"] == final["item_id"]]
    assert partials, "partial transcripts were sent while the user spoke"
    assert all(p["_t"] < final["_t"] for p in partials)
    assert "market" in final["text"].lower()


async def test_barge_in_cancels_and_truncates_to_what_was_heard(
    voice_server: ServerThread, llm: FakeOpenAI
):
    reply = " ".join(f"Sentence number {i} is here to be spoken aloud." for i in range(1, 30))
    llm.queue_reply(reply, token_ms=40)
    ws = await open_ws(voice_server, persona="emma", token="xia")
    sess = (await ws.wait_for("session.created"))["session"]
    await ws.send({"type": "input_text", "text": "Please talk for a long time."})
    created = await ws.wait_for("response.created")
    number = int(created["response_id"].split("_")[1])
    # 1.5 s of reply audio arrived (3 frames were once enough; under load they can hold less
    # than a word, so half of them was no word heard and nothing to store)
    while sum(len(c) for c in audio_frames(ws, number)) < 24_000 * 2 * 1.5:
        await ws.next_event(timeout=10)
    heard_pcm = sum(len(c) for c in audio_frames(ws, number)) // 2
    played_ms = heard_pcm / 24 / 2  # the listener heard half of what had arrived
    await ws.send(
        {
            "type": "response.audio.played",
            "response_id": created["response_id"],
            "played_ms": int(played_ms),
        }
    )
    await stream_audio(ws, with_silence(speak("Wait, stop please."), 100, 600), realtime=1.0)
    done = await ws.wait_for("response.done", response_id=created["response_id"], timeout=20)
    assert done["status"] == "cancelled"
    barge = ws.of_type("input_audio.speech_started")[0]
    assert done["_t"] >= barge["_t"]
    sent = done["text"]
    assert 0 < len(sent) < len(reply)
    await asyncio.sleep(0.3)
    msgs = await voice_server.call(voice_server.services.store.list_messages("xia", sess["id"]))
    assistant = next(m for m in msgs if m.role == "assistant")
    assert assistant.interrupted is True
    assert assistant.content and len(assistant.content) < len(sent)
    assert reply.startswith(assistant.content.split(" is here")[0])
    history = await voice_server.call(voice_server.services.agent.history(sess["thread_id"]))
    interrupted = [m for m in history if m.type == "ai" and m.additional_kwargs.get("interrupted")]
    assert [m.content for m in interrupted] == [assistant.content]
    assert reply not in [m.content for m in history]  # the full reply never entered history
    # the LLM stream was cut off too
    first_call = llm.chat_requests(mem0=False)[0]
    assert first_call["disconnected"] or not first_call["completed"]


@pytest.mark.parametrize("start_report", [False, True])
async def test_a_cancelled_reply_is_stored_as_played_reported_after_the_cancel(
    server_factory, llm: FakeOpenAI, start_report: bool
):
    """A client sends response.cancel, then, as told, where its playback stopped: the
    stored reply is what it heard. The cancel used to hold the socket's reader until the
    wait for that report was over (`PLAYED_REPORT_WAIT_MS`), so the report was read too
    late and all text sent was stored. A client that also said when playback started
    (`played_ms: 0`, docs/protocol.md) got nothing stored: the start report was taken as
    "0 ms heard" and the server did not wait at all."""
    server = server_factory(llm, tts_provider="espeak", default_output_audio="pcm16")
    reply = " ".join(f"Sentence number {i} is here to be spoken aloud." for i in range(1, 30))
    llm.queue_reply(reply, token_ms=40)
    ws = await open_ws(server, persona="emma", token=f"starter-{start_report}")
    sess = (await ws.wait_for("session.created"))["session"]
    await ws.send({"type": "input_text", "text": "Please talk for a long time."})
    rid = (await ws.wait_for("response.created"))["response_id"]
    number = int(rid.split("_")[1])
    while not audio_frames(ws, number):
        await ws.next_event(timeout=10)
    if start_report:
        await ws.send({"type": "response.audio.played", "response_id": rid, "played_ms": 0})
    while sum(len(c) for c in audio_frames(ws, number)) < 24_000 * 2 * 1.5:
        await ws.next_event(timeout=10)
    await ws.send({"type": "response.cancel"})
    done = await ws.wait_for("response.done", response_id=rid, timeout=20)
    assert done["status"] == "cancelled"
    await ws.send({"type": "response.audio.played", "response_id": rid, "played_ms": 1200})
    for _ in range(50):  # the stored reply settles once the report came
        await asyncio.sleep(0.1)
        msgs = await server.call(
            server.services.store.list_messages(f"starter-{start_report}", sess["id"])
        )
        assistant = [m for m in msgs if m.role == "assistant"]
        if assistant and assistant[0].content != done["text"]:
            break
    assert len(assistant) == 1 and assistant[0].interrupted is True, msgs
    heard = assistant[0].content
    assert heard and reply.startswith(heard) and len(heard) < len(done["text"]), heard
    await ws.conn.close()


async def test_a_played_report_for_a_reply_without_audio_is_an_error(
    server_factory, llm: FakeOpenAI
):
    """A client cannot have played audio it never got: a `response.audio.played` for the
    reply before any of its audio was sent (or for a text-only one) is an `invalid_event`.
    It was taken as playback starting, so `eos_to_played_ms` could come before the first
    audio was even sent, and a text reply got a "first audio played"."""
    server = server_factory(llm, tts_provider="espeak", default_output_audio="none")
    llm.queue_reply(" ".join(f"Sentence {i} is here." for i in range(30)), token_ms=40)
    ws = await open_ws(server, persona="emma", token="no-audio")
    await ws.wait_for("session.created")
    await ws.send({"type": "input_text", "text": "Talk for a while."})
    rid = (await ws.wait_for("response.created"))["response_id"]
    await ws.send({"type": "response.audio.played", "response_id": rid, "played_ms": 0})
    err = await ws.wait_for("error")
    assert err["code"] == "invalid_event" and rid in err["message"], err
    done = await ws.wait_for("response.done", response_id=rid, timeout=30)
    assert done["status"] == "completed" and "eos_to_played_ms" not in done["timings"]
    await ws.conn.close()


async def test_push_to_talk_commits_on_request(voice_server: ServerThread):
    ws = await open_ws(voice_server, persona="emma", token="yan")
    await ws.wait_for("session.created")
    await ws.send(
        {
            "type": "session.update",
            "session": {"turn_detection": {"type": "none"}, "output_audio": "none"},
        }
    )
    upd = await ws.wait_for("session.updated")
    assert upd["session"]["turn_detection"]["type"] == "none"
    await stream_audio(ws, with_silence(speak(SENTENCE), 200, 200))
    await asyncio.sleep(0.3)
    assert ws.of_type("input_audio.speech_started") == []  # no VAD turns in push-to-talk
    await ws.send({"type": "input_audio.commit"})
    done = await ws.wait_for("transcript.done", timeout=60)
    assert "fox" in done["text"].lower()


LONG = "The quick brown fox jumps over the lazy dog, and the old cat sleeps on the warm mat."


async def test_clear_forgets_the_buffered_and_the_spoken_audio(voice_server: ServerThread):
    """input_audio.clear drops push-to-talk audio (the next commit hears only what follows)
    and, with the VAD, speech in progress: its speech_stopped, then input_audio.cleared,
    and no transcript or reply for it."""
    ws = await open_ws(voice_server, persona="emma", token="clr")
    await ws.wait_for("session.created")
    status = await ws.wait_for("server.status")
    while status["modules"]["stt"] != "ready":  # a commit while Whisper loads is refused
        status = await ws.wait_for("server.status", timeout=120)
    ptt = {"turn_detection": {"type": "none"}, "output_audio": "none"}
    await ws.send({"type": "session.update", "session": ptt})
    await ws.wait_for("session.updated")
    # (at half real time: two utterances at once would pass WS_MAX_MESSAGES_PER_S)
    await stream_audio(ws, with_silence(speak("Pineapples grow in the garden."), 200, 200), 0.5)
    await ws.send({"type": "input_audio.clear"})
    await ws.wait_for("input_audio.cleared")
    await stream_audio(ws, with_silence(speak(SENTENCE), 200, 200), 0.5)
    await ws.send({"type": "input_audio.commit"})
    text = (await ws.wait_for("transcript.done", timeout=60))["text"].lower()
    assert "fox" in text and "pineapple" not in text, text
    await ws.wait_for("response.done", timeout=30)

    await ws.send({"type": "session.update", "session": {"turn_detection": {"type": "server_vad"}}})
    await ws.wait_for("session.updated")
    await stream_audio(ws, with_silence(speak(LONG), 300, 0)[: 16000 * 2], realtime=1.0)
    started = await ws.wait_for("input_audio.speech_started", timeout=30)
    await ws.send({"type": "input_audio.clear"})
    cleared = await ws.wait_for("input_audio.cleared")
    stopped = ws.of_type("input_audio.speech_stopped")
    assert [e["item_id"] for e in stopped] == [started["item_id"]]
    assert ws.events.index(stopped[0]) < ws.events.index(cleared)
    await stream_audio(ws, np.zeros(16000 * 2, dtype=np.float32), realtime=1.0)  # 2 s quiet
    assert len(ws.of_type("transcript.done")) == 1  # only the push-to-talk turn
    assert len(ws.of_type("response.created")) == 1
    await ws.send({"type": "ping", "id": 1})
    await ws.wait_for("pong")  # the socket is still open
    await ws.conn.close()


async def test_push_to_talk_switched_on_mid_speech_keeps_the_speech_so_far(
    voice_server: ServerThread,
):
    """The client turns push-to-talk on while the user speaks (the VAD had their speech):
    the commit transcribes the whole utterance. The speech before the switch was dropped."""
    audio = speak(LONG)
    half = len(audio) // 2
    ws = await open_ws(voice_server, persona="emma", token="ptt-on")
    await ws.wait_for("session.created")
    await ws.send({"type": "session.update", "session": {"output_audio": "none"}})
    await ws.wait_for("session.updated")
    await stream_audio(ws, with_silence(audio[:half], 300, 0), realtime=1.0)
    await ws.wait_for("input_audio.speech_started", timeout=30)
    await ws.send({"type": "session.update", "session": {"turn_detection": {"type": "none"}}})
    await ws.wait_for("session.updated")
    await stream_audio(ws, with_silence(audio[half:], 0, 300), realtime=1.0)
    await ws.send({"type": "input_audio.commit"})
    done = await ws.wait_for("transcript.done", timeout=60)
    text = done["text"].lower()
    assert "fox" in text and "mat" in text, text
    await ws.conn.close()


async def test_push_to_talk_switched_off_mid_speech_keeps_the_buffered_speech(
    voice_server: ServerThread,
):
    """The client turns push-to-talk off with speech buffered and not committed: the VAD
    hears it before what follows, so the turn has all of it. It was left in the buffer (and
    a later input_audio.commit transcribed that stale audio instead of the speech then)."""
    audio = speak(LONG)
    half = len(audio) // 2
    ws = await open_ws(voice_server, persona="emma", token="ptt-off")
    await ws.wait_for("session.created")
    ptt = {"output_audio": "none", "turn_detection": {"type": "none"}}
    await ws.send({"type": "session.update", "session": ptt})
    await ws.wait_for("session.updated")
    await stream_audio(ws, with_silence(audio[:half], 300, 0), realtime=1.0)
    await ws.send({"type": "session.update", "session": {"turn_detection": {"type": "server_vad"}}})
    await ws.wait_for("session.updated")
    await stream_audio(ws, with_silence(audio[half:], 0, 1200), realtime=1.0)
    done = await ws.wait_for("transcript.done", timeout=60)
    text = done["text"].lower()
    assert "fox" in text and "mat" in text, text
    await ws.conn.close()


async def test_malformed_mic_frames_get_errors_and_stream_continues(voice_server: ServerThread):
    ws = await open_ws(voice_server, persona="emma", token="zed")
    await ws.wait_for("session.created")
    await ws.send_raw(b"\x01" + b"\x00" * 641)
    assert (await ws.wait_for("error"))["code"] == "invalid_audio"
    await ws.send_raw(b"\x01" + b"\x00" * 6400)
    err = await ws.wait_for("error")
    assert err["code"] == "invalid_audio" and "100 ms" in err["message"]
    await ws.send({"type": "session.update", "session": {"output_audio": "none"}})
    await stream_audio(ws, with_silence(speak(SENTENCE), 300, 900), realtime=0.25)
    assert "fox" in (await ws.wait_for("transcript.done", timeout=60))["text"].lower()


def _wav(seconds: float) -> bytes:
    audio = speak("Hello, this is my voice for cloning. " * 4)[: int(16000 * seconds)]
    if len(audio) < 16000 * seconds:
        audio = np.pad(audio, (0, int(16000 * seconds) - len(audio)))
    return write_wav((audio * 32767).astype("<i2").tobytes(), 16000)


def _mp3() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=16000, layout="mono")
        pcm = (speak("Hello there, this is an mp3 file.") * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16000
        for p in stream.encode(frame):
            out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    return buf.getvalue()


async def test_voice_upload_validation(server: ServerThread):
    good = _wav(5)
    cases = {
        "real wav": (good, 200),
        "renamed mp3": (_mp3(), 400),
        "truncated header": (good[:30], 400),
        "1 s clip": (_wav(1), 400),
    }
    async with httpx.AsyncClient(base_url=server.url) as http:
        for name, (data, status) in cases.items():
            r = await http.post(
                "/v1/voice?token=ann", files={"audio_file": (f"{name}.wav", data, "audio/wav")}
            )
            assert r.status_code == status, name
            if status == 200:
                assert r.json() == {
                    "status": "success",
                    "message": "Voice reference updated successfully.",
                }
            else:
                assert r.json() == {"detail": "Invalid audio file format."}
    assert server.services.voice_path("ann").read_bytes() == good


async def _spoken_text_turn(server, token: str, text: str) -> None:
    """A text turn on a new /v1/ws session whose spoken reply is played to its end."""
    ws = await open_ws(server, persona="emma", token=token)
    await ws.wait_for("session.created")
    await ws.send({"type": "input_text", "text": text})
    created = await ws.wait_for("response.created")
    await finish_playback(ws, created["response_id"])
    assert (await ws.wait_for("response.done"))["status"] == "completed"


async def test_fish_speech_uses_the_cloned_reference(
    server_factory, llm: FakeOpenAI, fake_fish: FakeFish
):
    server = server_factory(
        llm, tts_provider="fish", fish_speech_url=fake_fish.base_url, default_output_audio="pcm16"
    )
    ref = _wav(4)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        r = await http.post(
            "/v1/voice?token=bea", files={"audio_file": ("me.wav", ref, "audio/wav")}
        )
        assert r.status_code == 200
        tts = await http.post(
            "/v1/tts?token=bea", json={"text": "Hello in my voice.", "format": "wav"}
        )
        assert tts.status_code == 200 and tts.headers["content-type"] == "audio/wav"
        assert tts.content[:4] == b"RIFF" and len(tts.content) > 24000
    sent_refs = [r["body"]["references"] for r in fake_fish.tts_requests()]
    assert sent_refs and sent_refs[-1][0]["audio"] == ref
    # and over the WebSocket: reply audio comes from Fish with the same reference
    llm.queue_reply("Hi there, it is me.")
    await _spoken_text_turn(server, "bea", "Say hi")
    calls = fake_fish.tts_requests()
    assert len(calls) >= 2 and all(c["body"]["references"][0]["audio"] == ref for c in calls)


async def test_fish_speech_gets_a_four_word_first_chunk(
    server_factory, llm: FakeOpenAI, fake_fish: FakeFish
):
    """TTS_FIRST_CHUNK_WORDS unset: an online engine's first chunk waits for 4 words (its
    audio hides the next chunk's time to first audio; espeak-ng's waits for 2)."""
    server = server_factory(
        llm, tts_provider="fish", fish_speech_url=fake_fish.base_url, default_output_audio="pcm16"
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        files = {"audio_file": ("me.wav", _wav(4), "audio/wav")}  # the voice Fish clones
        assert (await http.post("/v1/voice?token=fay", files=files)).status_code == 200
    words = "Sentence number one is here to be spoken aloud."
    llm.queue_reply(tokens=[w + " " for w in words.split()])
    await _spoken_text_turn(server, "fay", "Talk to me.")
    texts = [c["body"]["text"] for c in fake_fish.tts_requests()]
    assert texts == ["Sentence number one is", "here to be spoken aloud."]


async def test_a_repeated_reply_sentence_comes_from_the_tts_cache(
    server_factory, llm: FakeOpenAI, fake_fish: FakeFish
):
    server = server_factory(
        llm, tts_provider="fish", fish_speech_url=fake_fish.base_url, default_output_audio="pcm16"
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        files = {"audio_file": ("me.wav", _wav(4), "audio/wav")}
        assert (await http.post("/v1/voice?token=dee", files=files)).status_code == 200
    ws = await open_ws(server, persona="emma", token="dee")
    await ws.wait_for("session.created")
    audio: list[int] = []
    for _ in range(2):
        llm.queue_reply("Good morning to you!")
        await ws.send({"type": "input_text", "text": "Morning!"})
        created = await ws.wait_for("response.created")
        await finish_playback(ws, created["response_id"])
        done = await ws.wait_for("response.done", response_id=created["response_id"])
        assert done["status"] == "completed"
        audio.append(len(fake_fish.tts_requests()))
    assert audio[0] >= 1 and audio[1] == audio[0]  # the second greeting cost no synthesis
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        usage = (await http.get("/v1/usage?token=dee")).json()["usage"]
    assert usage["tts_cache_hits"] >= 1 and usage["tts_cache_misses"] >= 1


async def test_rest_tts_voices_and_chat_audio(server_factory, llm: FakeOpenAI):
    server = server_factory(llm)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        r = await http.post("/v1/tts", json={"text": "Hello from the offline voice."})
        assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
        with av.open(io.BytesIO(r.content)) as f:
            samples = sum(fr.samples for fr in f.decode(audio=0))
        assert samples > 24000 * 0.8
        assert (await http.post("/v1/tts", json={"text": "..."})).status_code == 400
        assert (await http.post("/v1/tts", json={"text": ""})).status_code == 422
        voices = (await http.get("/v1/tts/voices")).json()["voices"]
        providers = {v["provider"] for v in voices}
        assert {"edge", "espeak"} <= providers
        assert any(v["id"] == "ko-KR-SunHiNeural" for v in voices)
        llm.queue_reply("Here is a spoken answer.")
        chat = (await http.post("/v1/chat", json={"user_id": "cy", "message": "hi"})).json()
        audio = base64.b64decode(chat["audio_response_b64"])
        with av.open(io.BytesIO(audio)) as f:
            assert sum(fr.samples for fr in f.decode(audio=0)) > 0
