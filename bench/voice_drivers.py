"""bench/voice.py part 2, over the wire: the server under test (fixed-silence turns, duration
barge-in, espeak-ng TTS) against the fake LLM, and the voice, barge-in and text turns this
script drives through it as a client with a real-time mic."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from bench.procs import (
    FakeLLM,
    ServerProcess,
    fake_llm_settings,
    host_cpu_s,
    proc_cpu_s,
    server_env,
)
from bench.voice_client import FRAME_MS, FRAME_SAMPLES, RATE, Client, Mic, Utt, make_utt

VAD_WINDOW_MS = 32
BARGE_TEXT = "Wait, stop please, I have a question."
SERVER_DEFAULTS = {"VAD_MIN_SPEECH_MS": 250, "BARGE_IN_MIN_MS": 300}  # server/config.py
LONG_REQUEST = "Please tell me a long story about your day."


# --- child processes -----------------------------------------------------------------------------
def stt_ready(health: dict[str, Any]) -> bool:
    """/health is 200 before Whisper is loaded: wait for stt itself."""
    stt = health.get("modules", {}).get("stt")
    if stt == "error":
        raise RuntimeError("server STT failed")
    return stt == "ready"


def make_server(
    args: argparse.Namespace, workdir: Path, llm_url: str, stt_dir: Path
) -> ServerProcess:
    """The server under test with the voice settings being measured."""
    env = server_env(
        {
            **fake_llm_settings(workdir, llm_url),
            "MEMORY_ENABLED": "false",
            "VLM_ENABLED": "false",
            "FACE_ENABLED": "false",
            "STT_MODEL": str(stt_dir),
            "STT_COMPUTE_TYPE": "int8",
            "TTS_PROVIDER": "espeak",
            "DEFAULT_OUTPUT_AUDIO": args.format,
            "VAD_SILENCE_MS": str(args.silence_ms),
            # this part measures the fixed-silence loop and duration barge-in it defines;
            # semantic turns, backchannels and echo are bench/voice_turns.py (--turns)
            "TURN_DETECTION": "server_vad",
            "BARGE_IN_MODE": "duration",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
        }
        | dict(kv.split("=", 1) for kv in args.server_env),
        args.server_path,
    )
    return ServerProcess(workdir, env, ready=stt_ready, timeout_s=180)


# --- the turns ------------------------------------------------------------------------------------
@dataclass
class VoiceTurn:
    secs: int
    eos: float = math.nan  # monotonic
    stopped: float = math.nan
    done: float = math.nan
    first_audio: float = math.nan
    vad_end_err_ms: float = math.nan  # speech_stopped.t_ms - true offset (stream ms)
    vad_onset_err_ms: float = math.nan
    partials: int = 0
    item_id: str = ""
    text: str = ""
    response_id: str = ""
    status: str = ""
    created: float = math.nan


@dataclass
class BargeIn:
    started: float = math.nan
    trigger_sent: float = math.nan
    done: float = math.nan
    status: str = ""
    response_id: str = ""
    audio_before_ms: float = math.nan
    session_id: str = ""


@dataclass
class TextTurn:
    fmt: str
    sent: float = math.nan
    done: float = math.nan
    first_audio: float = math.nan
    ttfa_server_ms: float = math.nan


@dataclass
class Results:
    turns: list[VoiceTurn] = field(default_factory=list)
    barges: list[BargeIn] = field(default_factory=list)
    texts: list[TextTurn] = field(default_factory=list)
    llm: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    mic_late_ms: list[float] = field(default_factory=list)
    loop_lag: dict[str, float] = field(default_factory=dict)
    ping_ms: list[float] = field(default_factory=list)
    wall_minus_mono: float = field(default_factory=lambda: time.time() - time.monotonic())
    session_id: str = ""
    output: str = ""


async def finish_reply(c: Client, response_id: str, since: int, timeout: float = 60) -> str:
    """Act as a client that played the whole reply, so the response completes now."""
    ad = await c.wait("response.audio.done", since, timeout, response_id=response_id)
    await c.send(
        {
            "type": "response.audio.played",
            "response_id": response_id,
            "played_ms": ad["duration_ms"],
        }
    )
    return (await c.wait("response.done", since, timeout, response_id=response_id))["status"]


async def voice_turn(c: Client, mic: Mic, u: Utt) -> VoiceTurn:
    r = VoiceTurn(u.secs)
    mark = len(c.events)
    i0 = mic.play(u.audio)
    eos_frame = i0 + (math.ceil(u.offset_ms * RATE / 1000) - 1) // FRAME_SAMPLES
    td = await c.wait("transcript.done", mark, 60)
    r.done, r.item_id, r.text = td["_t"], td["item_id"], td["text"]
    r.eos = await mic.sent_time(eos_frame)
    if (st := c.find("input_audio.speech_stopped", mark, item_id=r.item_id)) is not None:
        r.stopped = st["_t"]
        r.vad_end_err_ms = st["t_ms"] - (i0 * FRAME_MS + u.offset_ms)
    if (sa := c.find("input_audio.speech_started", mark, item_id=r.item_id)) is not None:
        r.vad_onset_err_ms = sa["t_ms"] - (i0 * FRAME_MS + u.onset_ms)
    r.partials = sum(
        1 for e in c.events[mark:] if e["type"] == "transcript.delta" and e["item_id"] == r.item_id
    )
    if r.text.strip():
        created = await c.wait("response.created", mark, 30)
        r.response_id, r.created = created["response_id"], created["_t"]
        number = int(r.response_id.split("_")[1])
        r.first_audio = await c.wait_audio(number, 1, 30)
        r.status = await finish_reply(c, r.response_id, mark)
    await mic.drained()
    await asyncio.sleep(0.3)
    return r


async def barge_turn(
    c: Client, mic: Mic, u: Utt, rep: int, fmt: str, args: argparse.Namespace
) -> BargeIn:
    b = BargeIn()
    mark = len(c.events)
    await c.send({"type": "input_text", "text": LONG_REQUEST})
    created = await c.wait("response.created", mark, 30)
    b.response_id = created["response_id"]
    number = int(b.response_id.split("_")[1])
    await c.wait_audio(number, 3, 30)
    await asyncio.sleep(0.15 * (rep % 4))  # vary where in the reply the user cuts in
    b.audio_before_ms = c.audio_ms(number, fmt)
    await c.send(
        {
            "type": "response.audio.played",
            "response_id": b.response_id,
            "played_ms": int(b.audio_before_ms / 2),
        }
    )
    mark2 = len(c.events)
    mic.play(u.audio)
    done = await c.wait("response.done", mark, 30, response_id=b.response_id)
    b.done, b.status = done["_t"], done["status"]
    sa = c.find("input_audio.speech_started", mark2)
    if sa is not None:
        b.started = sa["_t"]
        fire_ms = sa["t_ms"] + barge_fire_offset_ms(setting(args, "BARGE_IN_MIN_MS"))
        b.trigger_sent = await mic.sent_time((fire_ms * RATE // 1000 - 1) // FRAME_SAMPLES)
    # the interruption itself becomes a turn: cancel that reply, it is not measured
    td = await c.wait("transcript.done", mark2, 60)
    if td["text"].strip():
        nxt = await c.wait("response.created", mark2, 30)
        await c.send({"type": "response.cancel"})
        await c.wait("response.done", mark2, 30, response_id=nxt["response_id"])
    await mic.drained()
    await asyncio.sleep(1.0)  # the cancelled reply settles what was heard (<= 800 ms)
    return b


async def text_turn(c: Client, fmt: str) -> TextTurn:
    r = TextTurn(fmt)
    mark = len(c.events)
    r.sent = time.monotonic()
    await c.send({"type": "input_text", "text": "How are you today?"})
    created = await c.wait("response.created", mark, 30)
    number = int(created["response_id"].split("_")[1])
    r.first_audio = await c.wait_audio(number, 1, 30)
    await finish_reply(c, created["response_id"], mark)
    done = c.find("response.done", mark, response_id=created["response_id"])
    if done is not None:
        r.done = done["_t"]
        r.ttfa_server_ms = float(done["timings"].get("ttfa_ms") or math.nan)
    await asyncio.sleep(0.2)
    return r


def setting(args: argparse.Namespace, name: str) -> int:
    """A server setting the derivations need: --server-env overrides, else the default."""
    given = dict(kv.split("=", 1) for kv in args.server_env)
    return int(given.get(name, SERVER_DEFAULTS[name]))


def barge_fire_offset_ms(min_ms: int) -> int:
    """Audio from the VAD onset until a ``>= min_ms`` check first holds (whole windows)."""
    return math.ceil(min_ms / VAD_WINDOW_MS) * VAD_WINDOW_MS


async def run_server_part(
    args: argparse.Namespace, workdir: Path, stt_dir: Path, utts: dict[int, Utt]
) -> Results:
    res = Results()
    fake = FakeLLM(
        workdir / "fake.log", ttft_ms=args.ttft_ms, token_ms=args.token_ms, tokens=args.tokens
    )
    server: ServerProcess | None = None
    try:
        await fake.start()
        server = make_server(args, workdir, fake.base_url, stt_dir)
        t = time.monotonic()
        await server.start()
        print(f"server up, STT ready in {time.monotonic() - t:.1f} s at {server.url}", flush=True)
        ws = await connect(
            server.ws_url(persona="emma", token="voicebench"),
            max_size=16 << 20,
            open_timeout=30,
            ping_interval=None,
        )
        c = Client(ws)
        created = await c.wait("session.created", 0, 30)
        res.session_id = created["session"]["id"]
        res.output = created["session"]["output_audio"]["format"]
        mic = Mic(ws)
        await server.details(reset=True)
        cpu0 = (host_cpu_s()[0], proc_cpu_s(server.pid), proc_cpu_s(os.getpid()))
        w0 = time.monotonic()
        try:
            await voice_turn(c, mic, utts[min(utts)])  # warm-up, not counted
            for i in range(10):  # WebSocket round trip on the client's clock alone
                mark, t = len(c.events), time.monotonic()
                await c.send({"type": "ping", "id": i})
                res.ping_ms.append(((await c.wait("pong", mark, 10))["_t"] - t) * 1000)
                await asyncio.sleep(0.05)
            await server.details(reset=True)
            for rep in range(args.reps):
                for secs in args.lengths:
                    print(f"  voice turn {secs} s, rep {rep + 1}/{args.reps}", flush=True)
                    res.turns.append(await voice_turn(c, mic, utts[secs]))
            res.loop_lag = (await server.details())["loop_lag_ms"]
            barge = make_utt(0, BARGE_TEXT, lead_ms=0)
            for rep in range(args.barge_reps):
                print(f"  barge-in {rep + 1}/{args.barge_reps}", flush=True)
                res.barges.append(await barge_turn(c, mic, barge, rep, res.output, args))
            if args.text_reps:
                for fmt in ("pcm16", "mp3"):
                    mark = len(c.events)
                    await c.send({"type": "session.update", "session": {"output_audio": fmt}})
                    await c.wait("session.updated", mark, 10)
                    print(f"  text turns, {fmt}", flush=True)
                    await text_turn(c, fmt)  # warm-up (mp3 encoder set-up), not counted
                    for _ in range(args.text_reps):
                        res.texts.append(await text_turn(c, fmt))
        finally:
            wall = time.monotonic() - w0
            host, srv = host_cpu_s()[0] - cpu0[0], proc_cpu_s(server.pid) - cpu0[1]
            me = proc_cpu_s(os.getpid()) - cpu0[2]
            res.cpu = {
                "wall_s": wall,
                "server": srv / wall * 100,
                "bench": me / wall * 100,
                "others": (host - srv - me) / wall * 100,
            }
            res.mic_late_ms = mic.late_ms
            await mic.close()
            await c.close()
        res.llm = await fake.dump()
        await asyncio.sleep(0.5)
        res.log = server.log_events()
    finally:
        if server is not None:
            await server.stop()
        await fake.stop()
    return res
