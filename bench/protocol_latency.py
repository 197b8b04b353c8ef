"""The same turn through each wire protocol: /v1/ws, DesktopMatePlus (/v1/chat/stream) and
OpenAI Realtime (/v1/realtime, driven by the openai SDK), against one real server process
and the fake LLM. A text turn (typed in, text out) measures time to the first text and to
the acknowledged end; a voice turn (typed in, spoken reply, TTS espeak-ng) measures time to
the first audio. A voice-input turn, for each protocol that takes voice (/v1/ws and Realtime;
DesktopMatePlus v1 has none), streams an espeak-ng utterance as a real-time microphone
(20 ms frames; Realtime gets them as 24 kHz appends with server_vad) and measures from the
end of speech (the send time of the frame holding its last sample) to the final transcript
and to the first reply audio (Whisper base int8 on the server, TTS espeak-ng). Run through
``python -m bench.latency --protocols``; the table prints the load average."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from bench.procs import FakeLLM, ServerProcess, fake_llm_settings, server_env
from bench.voice_client import FRAME_MS, UTTERANCES, Mic, Utt, make_utt
from bench.voice_drivers import stt_ready
from server.loopmon import percentile

Sample = dict[str, float]  # first_text_ms, first_audio_ms, done_ms


async def ws_turn(url: str, user: str, audio: bool, n: int) -> list[Sample]:
    out = []
    ws_url = url.replace("http", "ws", 1)
    async with connect(f"{ws_url}/v1/ws?token={user}", max_size=32 << 20) as ws:
        await ws.recv()
        fmt = "pcm16" if audio else "none"
        await ws.send(json.dumps({"type": "session.update", "session": {"output_audio": fmt}}))
        while json.loads(await ws.recv())["type"] != "session.updated":
            pass
        for i in range(n):
            t0, s = time.monotonic(), {}
            await ws.send(json.dumps({"type": "input_text", "text": f"Hello number {i}"}))
            while True:
                msg = await ws.recv()
                now = (time.monotonic() - t0) * 1000
                if isinstance(msg, bytes):
                    s.setdefault("first_audio_ms", now)
                    continue
                ev = json.loads(msg)
                if ev["type"] == "response.text.delta":
                    s.setdefault("first_text_ms", now)
                elif ev["type"] == "response.audio.done":  # report it all played
                    done = {"response_id": ev["response_id"], "played_ms": ev["duration_ms"]}
                    await ws.send(json.dumps({"type": "response.audio.played"} | done))
                elif ev["type"] == "response.done":
                    s["done_ms"] = now
                    break
            out.append(s)
    return out


async def dmp_turn(url: str, user: str, audio: bool, n: int) -> list[Sample]:
    out = []
    async with connect(f"{url.replace('http', 'ws')}/v1/chat/stream", max_size=32 << 20) as ws:
        await ws.send(json.dumps({"type": "authorize", "token": "t", "user_id": user}))
        await ws.recv()
        sid = None
        for i in range(n):
            t0, s = time.monotonic(), {}
            msg = {"type": "chat_message", "content": f"Hello number {i}", "user_id": user}
            msg |= {"agent_id": "yuri", "tts_enabled": audio} | ({"session_id": sid} if sid else {})
            await ws.send(json.dumps(msg))
            while True:
                ev = json.loads(await ws.recv())
                now = (time.monotonic() - t0) * 1000
                if ev["type"] == "stream_start":
                    sid = ev["session_id"]
                elif ev["type"] == "stream_token":
                    s.setdefault("first_text_ms", now)
                elif ev["type"] == "tts_chunk" and ev["audio_base64"]:
                    s.setdefault("first_audio_ms", now)
                elif ev["type"] == "stream_end":
                    s["done_ms"] = now
                    break
            out.append(s)
    return out


async def realtime_turn(url: str, user: str, audio: bool, n: int) -> list[Sample]:
    from openai import AsyncOpenAI

    out = []
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key=user)
    async with client.realtime.connect(model="emma") as conn:
        await conn.recv()
        mods = ["audio"] if audio else ["text"]
        await conn.session.update(session={"type": "realtime", "output_modalities": mods})
        while (await conn.recv()).type != "session.updated":
            pass
        for i in range(n):
            t0, s = time.monotonic(), {}
            part = {"type": "input_text", "text": f"Hello number {i}"}
            await conn.conversation.item.create(
                item={"type": "message", "role": "user", "content": [part]}
            )
            await conn.response.create()
            while True:
                ev = await conn.recv()
                now = (time.monotonic() - t0) * 1000
                if ev.type in (
                    "response.output_text.delta",
                    "response.output_audio_transcript.delta",
                ):
                    s.setdefault("first_text_ms", now)
                elif ev.type == "response.output_audio.delta":
                    s.setdefault("first_audio_ms", now)
                    base64.b64decode(ev.delta)
                elif ev.type == "response.done":
                    s["done_ms"] = now
                    break
            out.append(s)
    return out


# --- voice input: end of speech -> transcript -> first reply audio -------------------------------
async def _eos(mic: Mic, utt: Utt) -> float:
    """Queue the utterance; the send time of the frame holding its last speech sample."""
    first = mic.play(utt.audio)
    return await mic.sent_time(first + int(utt.offset_ms // FRAME_MS))


async def ws_voice(url: str, user: str, utt: Utt, n: int) -> list[Sample]:
    out = []
    ws_url = url.replace("http", "ws", 1)
    async with connect(f"{ws_url}/v1/ws?token={user}", max_size=32 << 20) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "session.update", "session": {"output_audio": "pcm16"}}))
        while json.loads(await ws.recv())["type"] != "session.updated":
            pass
        mic = Mic(ws)
        try:
            for _ in range(n):
                eos_task = asyncio.create_task(_eos(mic, utt))
                s: Sample = {}
                while True:
                    msg = await ws.recv()
                    now = time.monotonic()
                    if isinstance(msg, bytes):
                        if msg[0] == 0x11 and "transcript" in s:
                            s.setdefault("first_audio", now)
                        continue
                    ev = json.loads(msg)
                    if ev["type"] == "transcript.done" and ev["text"]:
                        s["transcript"] = now
                    elif ev["type"] == "response.audio.done":  # report it all played
                        done = {"response_id": ev["response_id"], "played_ms": ev["duration_ms"]}
                        await ws.send(json.dumps({"type": "response.audio.played"} | done))
                    elif ev["type"] == "response.done" and "transcript" in s:
                        s["done"] = now
                        break
                out.append(_from_eos(s, await eos_task))
                await asyncio.sleep(0.3)
        finally:
            await mic.close()
    return out


def _to_24k(frame: bytes) -> str:
    """A 20 ms PCM16 16 kHz frame as base64 PCM16 at 24 kHz (Realtime's rate)."""
    x = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    up = np.interp(np.arange(len(x) * 3 // 2) * (2 / 3), np.arange(len(x)), x)
    return base64.b64encode(up.round().astype("<i2").tobytes()).decode()


async def realtime_voice(url: str, user: str, utt: Utt, n: int) -> list[Sample]:
    from openai import AsyncOpenAI

    out = []
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key=user)
    async with client.realtime.connect(model="emma") as conn:
        await conn.recv()
        vad = {"type": "server_vad"}
        audio = {"input": {"turn_detection": vad}}
        session = {"type": "realtime", "output_modalities": ["audio"], "audio": audio}
        await conn.session.update(session=session)
        while (await conn.recv()).type != "session.updated":
            pass

        async def append(frame: bytes) -> None:
            await conn.input_audio_buffer.append(audio=_to_24k(frame))

        mic = Mic(None, send=append)
        try:
            for _ in range(n):
                eos_task = asyncio.create_task(_eos(mic, utt))
                s: Sample = {}
                while True:
                    ev = await conn.recv()
                    now = time.monotonic()
                    kind = ev.type
                    if kind == "conversation.item.input_audio_transcription.completed":
                        s["transcript"] = now
                    elif kind == "response.output_audio.delta" and "transcript" in s:
                        s.setdefault("first_audio", now)
                    elif kind == "response.done" and "transcript" in s:
                        s["done"] = now
                        break
                out.append(_from_eos(s, await eos_task))
                await asyncio.sleep(0.3)
        finally:
            await mic.close()
    return out


def _from_eos(s: Sample, eos: float) -> Sample:
    return {f"{k}_ms": (v - eos) * 1000 for k, v in s.items()}


VOICE_IN: dict[str, Callable[[str, str, Utt, int], Awaitable[list[Sample]]] | None] = {
    "/v1/ws (ours)": ws_voice,
    "/v1/chat/stream (DesktopMatePlus)": None,  # DMP v1 has no voice input
    "/v1/realtime (OpenAI Realtime, SDK)": realtime_voice,
}


PROTOCOLS: dict[str, Callable[[str, str, bool, int], Awaitable[list[Sample]]]] = {
    "/v1/ws (ours)": ws_turn,
    "/v1/chat/stream (DesktopMatePlus)": dmp_turn,
    "/v1/realtime (OpenAI Realtime, SDK)": realtime_turn,
}


def _cell(values: list[float]) -> str:
    if not values:
        return f"{'-':>8}{'-':>8}"
    v = sorted(values)
    return f"{percentile(v, 50):8.1f}{percentile(v, 95):8.1f}"


async def run(workdir: Path, turns: int, ttft_ms: float, token_ms: float, tokens: int) -> str:
    """Start the fake LLM and a server, time each protocol's text and voice turns."""
    from tests.speech import whisper_base_dir

    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    stt_dir = await asyncio.to_thread(whisper_base_dir)
    utt = await asyncio.to_thread(make_utt, 2, UTTERANCES[2])
    fake = FakeLLM(workdir / "fake.log", ttft_ms=ttft_ms, token_ms=token_ms, tokens=tokens, dims=64)
    await fake.start()
    env = server_env(
        {
            **fake_llm_settings(workdir, fake.base_url),
            "EMBED_DIMS": "64",
            "MEMORY_ENABLED": "false",
            "VLM_ENABLED": "false",
            "FACE_ENABLED": "false",
            "STT_MODEL": str(stt_dir),
            "STT_COMPUTE_TYPE": "int8",
            "TTS_PROVIDER": "espeak",
            "TTS_FALLBACK": "false",
            "PERSONA_ALIASES": "yuri=emma",
            "LOG_LEVEL": "WARNING",
        }
    )
    server = ServerProcess(workdir, env, ready=stt_ready, timeout_s=180)
    rows: list[str] = []
    voice_rows: list[str] = []
    load0 = os.getloadavg()
    try:
        await server.start()
        for name, fn in PROTOCOLS.items():
            for audio in (False, True):
                await fn(server.url, "bench-warm", audio, 1)  # warm-up, uncounted
                samples = await fn(server.url, f"bench-{len(rows)}", audio, turns)
                first = [s["first_text_ms"] for s in samples if "first_text_ms" in s]
                sound = [s["first_audio_ms"] for s in samples if "first_audio_ms" in s]
                done = [s["done_ms"] for s in samples if "done_ms" in s]
                kind = "voice turn (spoken reply)" if audio else "text turn"
                label = f"{name}: {kind}"
                rows.append(f"{label:<62}{_cell(first)}{_cell(sound)}{_cell(done)}")
        for name, voice in VOICE_IN.items():
            label = f"{name}: voice input"
            if voice is None:
                voice_rows.append(f"{label:<62}{'(no voice input in this protocol)':>48}")
                continue
            await voice(server.url, "bench-warm", utt, 1)
            samples = await voice(server.url, f"bench-v{len(voice_rows)}", utt, turns)
            cols = [[s[k] for s in samples if k in s] for k in _VOICE_KEYS]
            voice_rows.append(f"{label:<62}" + "".join(_cell(c) for c in cols))
    finally:
        await server.stop()
        await fake.stop()
    load1 = os.getloadavg()
    head = f"{'protocol: turn':<62}{'text p50':>8}{'p95':>8}{'audio50':>8}{'p95':>8}{'done50':>8}{'p95':>8}"
    title = (
        f"Turn latency per protocol (ms from sending the user's text; {turns} turns each;"
        f" fake LLM TTFT {ttft_ms:g} ms, {token_ms:g} ms/token, {tokens} tokens; TTS espeak-ng)"
    )
    vhead = f"{'protocol: turn':<62}{'stt p50':>8}{'p95':>8}{'audio50':>8}{'p95':>8}{'done50':>8}{'p95':>8}"
    vtitle = (
        f"Voice input (ms from the end of speech: final transcript, first reply audio, reply"
        f" stored; a {utt.speech_s:.1f} s espeak-ng utterance, Whisper base int8, server"
        f" VAD_SILENCE_MS default; {turns} turns each)"
    )
    load = (
        f"load average (1/5/15 min): {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at the start,"
        f" {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end; {os.cpu_count()} cores"
    )
    text = [title, head, "-" * len(head), *rows, ""]
    return "\n".join([*text, vtitle, vhead, "-" * len(vhead), *voice_rows, "", load])


_VOICE_KEYS = ("transcript_ms", "first_audio_ms", "done_ms")


async def table(args: Any, base: Path) -> str:
    return await run(base / "protocols", args.turns, args.ttft_ms, args.token_ms, args.tokens)
