"""The same turn through each wire protocol: /v1/ws, DesktopMatePlus (/v1/chat/stream) and
OpenAI Realtime (/v1/realtime, driven by the openai SDK), against one real server process
and the fake LLM. A text turn (typed in, text out) measures time to the first text and to
the acknowledged end; a voice turn (typed in, spoken reply, TTS espeak-ng) measures time to
the first audio. Run through ``python -m bench.latency --protocols``."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from bench.procs import FakeLLM, ServerProcess, server_env
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
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    fake = FakeLLM(workdir / "fake.log", ttft_ms=ttft_ms, token_ms=token_ms, tokens=tokens, dims=64)
    await fake.start()
    env = server_env(
        {
            "DATA_DIR": str(workdir / "data"),
            "LLM_BASE_URL": fake.base_url,
            "LLM_API_KEY": "x",
            "LLM_MODEL": "fake-model",
            "EMBED_DIMS": "64",
            "MEMORY_ENABLED": "false",
            "TTS_PROVIDER": "espeak",
            "TTS_FALLBACK": "false",
            "PERSONA_ALIASES": "yuri=emma",
            "LOG_LEVEL": "WARNING",
        }
    )
    server = ServerProcess(workdir, env)
    rows: list[str] = []
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
    finally:
        await server.stop()
        await fake.stop()
    head = f"{'protocol: turn':<62}{'text p50':>8}{'p95':>8}{'audio50':>8}{'p95':>8}{'done50':>8}{'p95':>8}"
    title = (
        f"Turn latency per protocol (ms from sending the user's text; {turns} turns each;"
        f" fake LLM TTFT {ttft_ms:g} ms, {token_ms:g} ms/token, {tokens} tokens; TTS espeak-ng)"
    )
    return "\n".join([title, head, "-" * len(head), *rows])


async def table(args: Any, base: Path) -> str:
    return await run(base / "protocols", args.turns, args.ttft_ms, args.token_ms, args.tokens)
