"""Voice loop latency benchmark: end of speech -> final transcript -> first reply audio,
and barge-in -> cancelled.

Two parts, never running at the same time (they would share the CPU):

1. In process: faster-whisper ``base`` int8 (the model the dev packages ship,
   ``tests.speech.whisper_base_dir()``) transcribes the benchmark utterances directly:
   final decode (beam 5 + temperature fallback) and partial decode (greedy, no timestamps),
   -> decode ms and real-time factor per utterance length. espeak-ng's time to its first
   audio chunk for the reply's first sentence (a term of the first-audio target), and the
   cost of the edge-tts -> espeak-ng fallback when edge is unreachable (simulated on loopback
   only: edge-tts pointed at a refused proxy port and at a proxy that never answers).
2. Over the wire: the fake OpenAI server (``bench.fake_llm`` in its own process; TTFT
   200 ms, 20 ms/token) and the real server (``desktopmate serve --port 0``, another
   process, ``TTS_PROVIDER=espeak``, ``VAD_SILENCE_MS=500``, ``MEMORY_ENABLED=false``,
   ``LOG_FORMAT=json``). This script is the client: a microphone that streams 20 ms PCM16
   frames in real time on a monotonic schedule (silence whenever nothing is being said),
   espeak-ng sentences of about 2..6 s as the user's speech.

Definitions (all client clocks are ``time.monotonic()``):

- end of speech (EOS): the send time of the mic frame holding the last speech sample
  (``tests.speech.speech_offset_ms`` of the utterance audio).
- EOS -> ``input_audio.speech_stopped`` / -> ``transcript.done``: receive times minus EOS.
- transcript.done -> first audio: receive time of the reply's first binary ``0x11`` frame
  minus that of ``transcript.done``. Target: LLM TTFT + (tokens up to the SentenceChunker's
  first cut - 1) x token gap + espeak first-chunk time (measured in part 1) + 30 ms.
- barge-in: while a long reply plays, the mic speaks. The server's VAD (32 ms windows)
  confirms speech (``speech_started``) after ``ceil(250/32)*32 = 256`` ms of audio from the
  onset and fires barge-in after ``ceil(300/32)*32 = 320`` ms. Three measures:
  (a) ``speech_started`` -> ``response.done`` (cancelled), minus the 64 ms of audio between
      the two decisions (client only, what the brief asked for);
  (b) the server's own log: ``barge_in`` -> ``response_done`` timestamps (exact server-side
      cancel latency, VAD decision to the event being queued);
  (c) end to end: the send time of the mic frame that completes the 320 ms window (the
      VAD's stream time equals the audio this client sent, so the frame is known exactly)
      -> ``response.done`` received. Includes frame transit, VAD queueing and inference.
      Split in two with the server's log timestamps (wall clock; the client maps its
      monotonic clock with one ``time.time() - time.monotonic()`` offset).

Decomposition rows come from the server's JSON log (``transcribed``: ``stt_ms`` model time,
``after_end_ms`` from the VAD's end decision to ``transcript.done``; ``barge_in``;
``response_started``/``response_done``) and the fake's request log (request received,
first token sent, on the shared CLOCK_MONOTONIC). The noise block shows the CPU other
processes used: on a 2-core host they land directly in the STT numbers.

Usage: ``uv run python -m bench.voice [--reps 4] [--lengths 2,3,4,5,6] [--quick]``.
Default run about 4 minutes on 2 cores; ``--quick`` about 1 minute. ``--raw FILE`` writes
every sample as JSON; ``--server-env KEY=VALUE`` and ``--server-path DIR`` (prepended to the
server's PYTHONPATH, e.g. a ``sitecustomize.py`` with a prototype patch) make A/B runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import re
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from bench.procs import (
    FakeLLM,
    ServerProcess,
    host_cpu_s,
    print_tables,
    proc_cpu_s,
    run_main,
    server_env,
)
from bench.stats import pct

RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
VAD_WINDOW_MS = 32

UTTERANCES = {  # espeak-ng en-us at its default rate; the run prints the real lengths
    2: "Please turn on all the kitchen lights now.",
    3: "Could you remind me to call my sister about the trip on Friday?",
    4: "I spent the whole afternoon at the library reading about the history of big ships.",
    5: "I would like to plan a short trip to the mountains next month, maybe somewhere "
    "quiet with a lake.",
    6: "My friend and I walked along the river this morning and then stopped for coffee at "
    "a small bakery near the old bridge.",
}
BARGE_TEXT = "Wait, stop please, I have a question."
LOG_EVENTS = ("transcribed", "barge_in", "response_done", "response_started")
SERVER_DEFAULTS = {"VAD_MIN_SPEECH_MS": 250, "BARGE_IN_MIN_MS": 300}  # server/config.py
LONG_REQUEST = "Please tell me a long story about your day."


# --- statistics and the table ----------------------------------------------------------------
@dataclass
class Row:
    label: str
    values: list[float]
    target: float | None = None  # PASS when p95 <= target ("p50 only" when just p50 is)
    note: str = ""
    fmt: str = "{:8.0f}"

    def cells(self) -> str:
        v = self.values
        if not v:
            return f"{'-':>4}{'(no samples)':>24}"
        return f"{len(v):>4}" + "".join(
            self.fmt.format(x) for x in (pct(v, 50), pct(v, 95), max(v))
        )

    def verdict(self) -> str:
        if self.target is None or not self.values:
            return ""
        if pct(self.values, 95) <= self.target:
            return "PASS"
        return "p50 only" if pct(self.values, 50) <= self.target else "FAIL"


def render(title: str, blocks: list[tuple[str, list[Row], list[str]]]) -> str:
    w = 58
    head = f"{'metric (ms unless noted)':<{w}}{'n':>4}{'p50':>8}{'p95':>8}{'max':>8}  {'target':<9}result"
    out = [title, "=" * len(head)]
    for name, rows, notes in blocks:
        out += ["", name, head, "-" * len(head)]
        for r in rows:
            tgt = f"<= {r.target:.0f}" if r.target is not None else ""
            out.append(f"{r.label:<{w}}{r.cells()}  {tgt:<9}{r.verdict()}{r.note}")
        out += notes
    return "\n".join(out)


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
            "DATA_DIR": str(workdir / "data"),
            "LLM_BASE_URL": llm_url,
            "LLM_API_KEY": "x",
            "LLM_MODEL": "fake-model",
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


# --- audio material ------------------------------------------------------------------------------
@dataclass
class Utt:
    secs: int
    text: str
    audio: np.ndarray  # float32 16 kHz, lead silence included, whole frames
    onset_ms: float  # speech onset / offset within ``audio``
    offset_ms: float

    @property
    def speech_s(self) -> float:
        return (self.offset_ms - self.onset_ms) / 1000


def make_utt(secs: int, text: str, lead_ms: int = 300) -> Utt:
    from tests.speech import speak, speech_offset_ms, speech_onset_ms, with_silence

    audio = with_silence(speak(text), lead_ms, 0)
    audio = np.concatenate((audio, np.zeros(-audio.size % FRAME_SAMPLES, np.float32)))
    return Utt(secs, text, audio, speech_onset_ms(audio), speech_offset_ms(audio))


# --- part 1: in process ----------------------------------------------------------------------
def measure_stt(utts: list[Utt], stt_dir: Path, reps: int) -> dict[str, Any]:
    """Decode each utterance as the server would get it from the VAD (about 320 ms
    pre-roll + speech + 300 ms pad): final and partial, ``reps`` times each."""
    from server.providers.stt import WhisperSTT

    stt = WhisperSTT(stt_dir)  # server defaults: int8, min(4, cpus) threads, beams 1 / 5
    t = time.perf_counter()
    stt.load()
    load_s = time.perf_counter() - t
    out: dict[str, Any] = {"load_s": load_s, "threads": stt.cpu_threads, "by_len": {}}
    warm = utts[0]
    stt.transcribe(warm.audio, "en")
    for u in utts:
        s, e = int(u.onset_ms * 16), int(u.offset_ms * 16)
        seg = np.concatenate(
            (np.zeros(320 * 16, np.float32), u.audio[s:e], np.zeros(300 * 16, np.float32))
        )
        finals, partials, texts = [], [], []
        for _ in range(reps):
            f = stt.transcribe(seg, "en")
            p = stt.transcribe(seg, "en", partial=True)
            finals.append(f.elapsed_s * 1000)
            partials.append(p.elapsed_s * 1000)
            texts.append(f.text)
        out["by_len"][u.secs] = {
            "audio_s": seg.size / RATE,
            "final_ms": finals,
            "partial_ms": partials,
            "text": texts[0],
        }
    # a 1 s partial: the encoder window is at least STT_PARTIAL_WINDOW_MIN_S (5 s), so a short input
    # costs about as much as a 5 s one
    short = np.concatenate((np.zeros(320 * 16, np.float32), utts[0].audio[: RATE * 7 // 10]))
    out["partial_1s_ms"] = [
        stt.transcribe(short, "en", partial=True).elapsed_s * 1000 for _ in range(reps)
    ]
    del stt
    gc.collect()
    return out


async def first_chunk_ms(tts: Any, text: str, voice: str | None = None) -> float:
    t = time.perf_counter()
    agen = tts.synthesize(text, voice)
    try:
        await anext(agen)
    finally:
        await agen.aclose()
    return (time.perf_counter() - t) * 1000


async def measure_tts(first_text: str, reps: int) -> dict[str, Any]:
    from server.providers.tts.edge import EdgeTTS
    from server.providers.tts.espeak import EspeakTTS
    from server.providers.tts.fallback import FallbackTTS

    espeak = EspeakTTS()
    await first_chunk_ms(espeak, first_text, "en-us")  # loads the library
    direct = [await first_chunk_ms(espeak, first_text, "en-us") for _ in range(max(reps, 5))]

    out: dict[str, Any] = {"espeak_first_ms": direct}
    t = time.perf_counter()
    import aiohttp  # noqa: F401  (EdgeTTS imports these on its first call: once per process)
    import edge_tts  # noqa: F401

    out["edge_import_ms"] = (time.perf_counter() - t) * 1000
    # edge-tts unreachable, simulated on loopback only: a proxy port that refuses, and a
    # proxy that accepts and never answers (a black-holed network). The first call probes
    # edge and falls back; the next one (degraded) skips edge for retry_after_s (60 s).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused_port = s.getsockname()[1]
    hold: list[asyncio.StreamWriter] = []

    async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        hold.append(w)

    hole = await asyncio.start_server(silent, "127.0.0.1", 0)
    hole_port = hole.sockets[0].getsockname()[1]
    try:
        for name, port in (("refused", refused_port), ("blackhole", hole_port)):
            fb = FallbackTTS(EdgeTTS("en-US-AriaNeural", proxy=f"http://127.0.0.1:{port}"), espeak)
            first = await first_chunk_ms(fb, first_text, "en-US-AriaNeural")
            then = await first_chunk_ms(fb, first_text, "en-US-AriaNeural")
            out[f"edge_{name}"] = (first, then, fb.degraded_reason or "")
    finally:
        for w in hold:
            w.close()
        hole.close()
    return out


def first_cut(tokens: list[str]) -> tuple[int, str]:
    """How many streamed tokens the SentenceChunker needs before its first chunk."""
    from server.pipelines.chunker import SentenceChunker

    ch = SentenceChunker()
    for i, tok in enumerate(tokens, 1):
        if got := ch.push(tok):
            return i, got[0]
    return len(tokens), " ".join(ch.flush())


def reply_tokens(n: int) -> list[str]:
    from tests.fakes.openai_server import FakeOpenAI

    return FakeOpenAI.default_tokens(n)


# --- part 2: the client ------------------------------------------------------------------------
class Client:
    """Reads every frame, stamping receive times; JSON events and 0x11 audio frames."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.audio: list[tuple[float, int, int, int]] = []  # (t, response number, seq, bytes)
        self._cond = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for msg in self.ws:
                t = time.monotonic()
                if isinstance(msg, bytes):
                    if msg[:1] == b"\x11" and len(msg) >= 9:
                        _, num, seq = struct.unpack(">BII", msg[:9])
                        self.audio.append((t, num, seq, len(msg) - 9))
                else:
                    ev = json.loads(msg)
                    ev["_t"] = t
                    self.events.append(ev)
                async with self._cond:
                    self._cond.notify_all()

    async def send(self, ev: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(ev))

    def find(self, type_: str, since: int = 0, **match: Any) -> dict[str, Any] | None:
        for ev in self.events[since:]:
            if ev["type"] == type_ and all(ev.get(k) == v for k, v in match.items()):
                return ev
        return None

    async def wait(self, type_: str, since: int = 0, timeout: float = 30, **match: Any):
        async with asyncio.timeout(timeout):
            async with self._cond:
                while (ev := self.find(type_, since, **match)) is None:
                    if self._task.done():
                        raise RuntimeError("the connection closed")
                    await self._cond.wait()
        return ev

    async def wait_audio(self, number: int, count: int = 1, timeout: float = 30) -> float:
        """Receive time of the ``count``-th audio frame of response ``number``."""
        async with asyncio.timeout(timeout):
            async with self._cond:
                while len(got := [a for a in self.audio if a[1] == number]) < count:
                    await self._cond.wait()
        return got[count - 1][0]

    def audio_ms(self, number: int, fmt: str) -> float:
        n = sum(a[3] for a in self.audio if a[1] == number)
        return n / 48 if fmt == "pcm16" else n * 8 / 48  # pcm16 24 kHz / mp3 48 kbit/s

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()


class Mic:
    """A microphone: 20 ms frames on a monotonic schedule (late frames catch up at once),
    silence whenever no speech is queued. ``sent[i]`` is when frame i went out; frame i
    holds VAD stream time [20 i, 20 i + 20) ms."""

    def __init__(
        self, ws: ClientConnection | None, send: Callable[[bytes], Awaitable[None]] | None = None
    ) -> None:
        """Frames go to /v1/ws as 0x01 binary frames, or to ``send`` (another protocol)."""
        self.ws = ws
        self._send = send
        self.queue: list[bytes] = []
        self.sent: list[float] = []
        self.late_ms: list[float] = []
        self._tick = asyncio.Condition()
        self._task = asyncio.create_task(self._run())

    def play(self, audio: np.ndarray) -> int:
        """Queue speech; returns the index of its first frame."""
        from tests.speech import pcm16_frames

        first = len(self.sent) + len(self.queue)
        self.queue += pcm16_frames(audio, FRAME_MS)
        return first

    async def sent_time(self, index: int) -> float:
        """When frame ``index`` was sent (waits for it)."""
        async with self._tick:
            await self._tick.wait_for(lambda: len(self.sent) > index)
        return self.sent[index]

    async def drained(self) -> None:
        """Until every queued speech frame is out."""
        async with self._tick:
            await self._tick.wait_for(lambda: not self.queue)

    async def _run(self) -> None:
        silence = b"\x00" * FRAME_SAMPLES * 2
        t0 = time.monotonic()
        k = 0
        while True:
            due = t0 + k * FRAME_MS / 1000
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            frame = self.queue.pop(0) if self.queue else silence
            if self._send is not None:
                await self._send(frame)
            else:
                assert self.ws is not None
                await self.ws.send(b"\x01" + frame)
            now = time.monotonic()
            self.sent.append(now)
            self.late_ms.append((now - due) * 1000)
            k += 1
            async with self._tick:
                self._tick.notify_all()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


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


# --- report ------------------------------------------------------------------------------------
def build_report(
    args: argparse.Namespace,
    utts: dict[int, Utt],
    stt: dict[str, Any],
    tts: dict[str, Any],
    res: Results,
) -> str:
    ms = 1000.0
    turns = [t for t in res.turns if not math.isnan(t.done)]
    blocks: list[tuple[str, list[Row], list[str]]] = []

    # 1. turn detection and final transcript
    transcribed = {e["item_id"]: e for e in res.log if e.get("event") == "transcribed"}
    target_final = args.silence_ms + 400
    rows = [
        Row(
            "EOS -> speech_stopped (all lengths)",
            [(t.stopped - t.eos) * ms for t in turns if not math.isnan(t.stopped)],
            note=f"  (= VAD silence {args.silence_ms} + window + where the VAD put the end)",
        ),
        Row(
            "  speech_stopped t_ms - true speech end (stream ms)", [t.vad_end_err_ms for t in turns]
        ),
        Row("  speech_started t_ms - true onset (stream ms)", [t.vad_onset_err_ms for t in turns]),
    ]
    for secs in args.lengths:
        ts = [t for t in turns if t.secs == secs]
        rows.append(
            Row(
                f"EOS -> transcript.done, {utts[secs].speech_s:.1f} s speech",
                [(t.done - t.eos) * ms for t in ts],
                target=target_final if secs == 3 else None,
            )
        )
    for secs in args.lengths:
        ts = [t for t in turns if t.secs == secs]
        rows.append(
            Row(
                f"  speech_stopped -> transcript.done, {secs} s",
                [(t.done - t.stopped) * ms for t in ts if not math.isnan(t.stopped)],
            )
        )
    for secs in args.lengths:
        logs = [
            transcribed[t.item_id] for t in turns if t.secs == secs and t.item_id in transcribed
        ]
        rows.append(Row(f"  server final decode (stt_ms), {secs} s", [e["stt_ms"] for e in logs]))
        rows.append(
            Row(
                f"  server end decided -> final done (after_end_ms), {secs} s",
                [e["after_end_ms"] for e in logs],
            )
        )
    waits = [
        e["after_end_ms"] - e["stt_ms"]
        for t in turns
        if (e := transcribed.get(t.item_id)) is not None
    ]
    rows.append(Row("  after_end_ms - stt_ms (< 0: decode began before the end)", waits))
    rows.append(Row("  partial transcripts per utterance (count)", [t.partials for t in turns]))
    bad = [t for t in turns if not words_ok(t.text, utts[t.secs].text)]
    notes = [
        f"  target: final transcript <= VAD silence {args.silence_ms} + 400 ms for the 3 s"
        " utterance (PASS: p95 within; 'p50 only': median within, p95 not)",
        f"  utterances: {len(turns)} measured ({args.reps} per length); transcripts with"
        f" < 60% of the words right: {len(bad)}" + (f" e.g. {bad[0].text!r}" if bad else ""),
    ]
    blocks.append(
        (
            f"1. End of speech -> final transcript (real-time mic, VAD_SILENCE_MS={args.silence_ms})",
            rows,
            notes,
        )
    )

    # 2. STT in process
    rows = []
    for secs in args.lengths:
        d = stt["by_len"][secs]
        rows.append(Row(f"final decode (beam 5), {d['audio_s']:.1f} s of audio", d["final_ms"]))
        rows.append(
            Row(
                "  final real-time factor (decode s / audio s)",
                [x / 1000 / d["audio_s"] for x in d["final_ms"]],
                fmt="{:8.2f}",
            )
        )
        rows.append(Row("  partial decode (greedy, no timestamps)", d["partial_ms"]))
    rows.append(Row("partial decode of 1.0 s of audio", stt["partial_1s_ms"]))
    notes = [
        f"  faster-whisper base int8, {stt['threads']} threads, {os.cpu_count()} CPUs;"
        f" model load {stt['load_s']:.1f} s. The encoder window is the audio + 1 s, at least"
        " STT_WINDOW_MIN_S (5 s): below that, decode time is mostly the fixed encoder cost.",
    ]
    blocks.append(("2. STT alone, in process (no server)", rows, notes))

    # 3. first audio
    tokens = reply_tokens(args.tokens)
    k, chunk = first_cut(tokens)
    text_ms = (k - 1) * args.token_ms
    esp = pct(tts["espeak_first_ms"], 50)
    target_fa = args.ttft_ms + text_ms + esp + 30
    llm_calls = [r for r in res.llm if r.get("kind") == "chat" and r.get("stream")]
    decomp_req, decomp_fa = [], []
    for t in turns:
        if math.isnan(t.first_audio):
            continue
        rec = next(
            (r for r in llm_calls if r.get("t") and t.done - 0.2 <= r["t"] <= t.first_audio), None
        )
        if rec and rec.get("t_first_token"):
            decomp_req.append((rec["t"] - t.done) * ms)
            decomp_fa.append((t.first_audio - rec["t_first_token"]) * ms)
    text_req = []
    for x in res.texts:
        rec = next((r for r in llm_calls if r.get("t") and x.sent <= r["t"] <= x.done), None)
        if rec:
            text_req.append((rec["t"] - x.sent) * ms)
    fake_ttft = [(r["t_first_token"] - r["t"]) * ms for r in llm_calls if r.get("t_first_token")]
    rows = [
        Row(
            "transcript.done -> first audio frame (0x11)",
            [(t.first_audio - t.done) * ms for t in turns if not math.isnan(t.first_audio)],
            target=target_fa,
        ),
        Row("  transcript.done (client) -> LLM request at the fake", decomp_req),
        Row("  fake's own TTFT (request -> first token)", fake_ttft),
        Row("  fake's first token -> first audio frame (client)", decomp_fa),
        Row(
            f"  first-chunk text: {k} tokens -> ({k}-1) x {args.token_ms:g} ms",
            [text_ms],
        ),
        Row(f"  espeak first chunk, in process ({len(chunk)} chars)", tts["espeak_first_ms"]),
    ]
    for fmt in ("pcm16", "mp3"):
        vals = [(x.first_audio - x.sent) * ms for x in res.texts if x.fmt == fmt]
        if vals:
            rows.append(Row(f"input_text -> first audio, {fmt} (text turns)", vals))
    if text_req:
        rows.append(Row("  input_text sent -> LLM request at the fake (text turns)", text_req))
    notes = [
        f"  target = LLM TTFT {args.ttft_ms:g} + first-chunk text {text_ms:g} + espeak first"
        f" chunk {esp:.0f} (p50 in process) + 30 = {target_fa:.0f} ms;"
        f" reply output {res.output}",
        f"  first chunk cut by SentenceChunker: {chunk!r}",
    ]
    if not llm_calls:
        notes.append("  (no fake request log: bench/fake_llm.py missing, decomposition skipped)")
    blocks.append(
        (
            f"3. transcript.done -> first reply audio (fake LLM TTFT {args.ttft_ms:g} ms,"
            f" {args.token_ms:g} ms/token; TTS espeak-ng)",
            rows,
            notes,
        )
    )

    # 4. barge-in
    min_speech, barge_min = setting(args, "VAD_MIN_SPEECH_MS"), setting(args, "BARGE_IN_MIN_MS")
    confirm, fire = barge_fire_offset_ms(min_speech), barge_fire_offset_ms(barge_min)
    bs = [b for b in res.barges if b.status == "cancelled" and not math.isnan(b.started)]
    server_ms = []
    barge_logs = [e for e in res.log if e.get("event") == "barge_in"]
    done_logs = {
        e.get("response_id"): e
        for e in res.log
        if e.get("event") == "response_done" and e.get("status") == "cancelled"
    }
    for e in barge_logs:
        d = done_logs.get(e.get("response_id"))
        if d is not None:
            server_ms.append((d["_ts"] - e["_ts"]) * ms)
    started_logs = {
        e.get("response_id"): e for e in res.log if e.get("event") == "response_started"
    }
    created_lag = [
        (t.created + res.wall_minus_mono - started_logs[t.response_id]["_ts"]) * ms
        for t in turns
        if t.response_id in started_logs and not math.isnan(t.created)
    ]
    to_server, to_client = [], []  # client monotonic + offset = wall clock of the log lines
    for b in bs:
        e = next((x for x in barge_logs if x.get("response_id") == b.response_id), None)
        if e is not None:
            to_server.append((e["_ts"] - (b.trigger_sent + res.wall_minus_mono)) * ms)
        if (d := done_logs.get(b.response_id)) is not None:
            to_client.append((b.done + res.wall_minus_mono - d["_ts"]) * ms)
    rows = [
        Row(
            "(b) server log: barge_in -> response_done",
            server_ms,
            target=50,
        ),
        Row(
            f"(c) trigger frame sent ({fire} ms after onset) -> response.done",
            [(b.done - b.trigger_sent) * ms for b in bs],
            target=50,
        ),
        Row(
            f"(a) speech_started -> response.done, minus {fire - confirm} ms",
            [(b.done - b.started) * ms - (fire - confirm) for b in bs],
            target=50,
        ),
        Row("  (c) part: trigger frame sent -> server's barge_in log", to_server),
        Row("  (c) part: server's response_done log -> client has it", to_client),
        Row("  compare: response_started log -> client has response.created", created_lag),
        Row("  speech_started -> response.done (raw)", [(b.done - b.started) * ms for b in bs]),
        Row(
            "  reply audio received before the user cut in (ms of audio)",
            [b.audio_before_ms for b in res.barges],
        ),
    ]
    notes = [
        f"  VAD: speech confirmed after ceil({min_speech}/32)*32 = {confirm} ms of audio"
        f" from the onset, barge-in fires at ceil({barge_min}/32)*32 = {fire} ms: (a)"
        f" subtracts the {fire - confirm} ms of audio in between.",
        f"  barge-ins: {len(res.barges)} tried, {len(bs)} cancelled;"
        f" server log pairs: {len(server_ms)}",
    ]
    blocks.append(("4. Barge-in: VAD fires -> response.done (cancelled)", rows, notes))

    # 5. TTS fallback
    rows = [
        Row("espeak-ng direct: first chunk", tts["espeak_first_ms"]),
        Row("import edge_tts + aiohttp (first edge call per process)", [tts["edge_import_ms"]]),
    ]
    reasons = []
    for name in ("refused", "blackhole"):
        first, then, why = tts[f"edge_{name}"]
        rows.append(Row(f"edge {name} -> espeak: first call (probes edge)", [first]))
        rows.append(Row("  next call (degraded: edge skipped for 60 s)", [then]))
        reasons.append(f"  {name}: {why}")
    notes = [
        "  edge-tts pointed at a loopback proxy (no traffic leaves the host): 'refused' = port"
        " closed (offline host, fast failure); 'blackhole' = accepts, never answers (captive"
        " or filtered network): edge's 3 s first-audio timeout. While degraded, one reply"
        " every 60 s probes edge again and pays that cost on its first sentence.",
        *reasons,
    ]
    blocks.append(("5. TTS: espeak-ng direct vs the edge-tts -> espeak-ng fallback", rows, notes))

    # 6. host
    late = res.mic_late_ms
    rows = [
        Row("bench mic frame lateness vs its schedule", late, fmt="{:8.1f}"),
        Row("WebSocket ping -> pong round trip (idle)", res.ping_ms, fmt="{:8.1f}"),
        Row("server CPU, % of one core", [res.cpu.get("server", math.nan)]),
        Row("bench client CPU, % of one core", [res.cpu.get("bench", math.nan)]),
        Row("other processes on the host, % of one core", [res.cpu.get("others", math.nan)]),
    ]
    lag = res.loop_lag
    notes = [
        f"  server phase wall time {res.cpu.get('wall_s', 0):.0f} s; server event-loop lag"
        f" during the voice turns (its /health/details): p50 {lag.get('p50', math.nan)}, p99"
        f" {lag.get('p99', math.nan)}, max {lag.get('max', math.nan)} ms"
    ]
    if res.cpu.get("others", 0) > 25:
        notes.append(
            f"  WARNING: other processes used {res.cpu['others']:.0f}% of a core during the"
            f" run ({os.cpu_count()} CPUs): STT numbers include their interference."
        )
    blocks.append(("6. Noise check", rows, notes))

    lens = ", ".join(f"{s}: {utts[s].speech_s:.2f} s" for s in args.lengths)
    title = (
        f"DesktopMate-Plus voice loop latency - Whisper base int8, {os.cpu_count()} CPUs,"
        f" espeak-ng TTS, output {res.output}, VAD silence {args.silence_ms} ms\n"
        f"utterance speech lengths {lens}"
    )
    return render(title, blocks)


def words_ok(got: str, want: str) -> bool:
    norm = lambda s: re.findall(r"[a-z']+", s.lower())  # noqa: E731
    w = set(norm(want))
    return len(w & set(norm(got))) >= 0.6 * len(w)


# --- main --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--reps", type=int, default=4, help="voice turns per utterance length")
    ap.add_argument("--lengths", default="2,3,4,5,6", help="utterance lengths (s), from 2..6")
    ap.add_argument("--barge-reps", type=int, default=4)
    ap.add_argument("--text-reps", type=int, default=4, help="text turns per output format")
    ap.add_argument("--stt-reps", type=int, default=2, help="in-process decodes per length")
    ap.add_argument("--format", choices=("pcm16", "mp3"), default="pcm16", help="reply audio")
    ap.add_argument("--silence-ms", type=int, default=500, help="server VAD_SILENCE_MS")
    ap.add_argument("--ttft-ms", type=float, default=200)
    ap.add_argument("--token-ms", type=float, default=20)
    ap.add_argument("--tokens", type=int, default=40, help="reply length (long: barge-in)")
    ap.add_argument("--quick", action="store_true", help="2 reps, 3 s only, no text turns")
    ap.add_argument(
        "--turns",
        action="store_true",
        help="the turn-taking targets instead (bench/voice_turns.py: semantic turns, "
        "backchannels, stop phrases, echo, latency to first audio)",
    )
    ap.add_argument("--turns-n", type=int, default=20, help="trials per turn-taking row")
    ap.add_argument("--max-seconds", type=float, default=600, help="hard limit for the run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    ap.add_argument("--nice", type=int, default=None, help="niceness (as bench/latency.py)")
    ap.add_argument("--raw", type=Path, help="also write every measurement to this JSON file")
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra server environment (repeatable), e.g. STT_PARTIAL_INTERVAL_MS=1000",
    )
    ap.add_argument(
        "--server-path",
        action="append",
        default=[],
        metavar="DIR",
        help="prepended to the server's PYTHONPATH (A/B a prototype via sitecustomize.py)",
    )
    args = ap.parse_args(argv)
    args.lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    if args.quick:
        args.reps, args.lengths, args.barge_reps, args.text_reps, args.stt_reps = 2, [3], 2, 0, 2
    if unknown := [x for x in args.lengths if x not in UTTERANCES]:
        ap.error(f"no utterance of {unknown} s; choose from {sorted(UTTERANCES)}")
    return args


async def amain(args: argparse.Namespace) -> int:
    from server.logging import configure_logging
    from tests.speech import whisper_base_dir

    configure_logging("ERROR")  # the in-process fallback test would log tts.degraded warnings
    stt_dir = whisper_base_dir()

    async def tables(base: Path) -> AsyncIterator[str]:
        utts = {s: make_utt(s, UTTERANCES[s]) for s in sorted({*args.lengths, 2})}
        print("in process: STT decodes ...", flush=True)
        stt = await asyncio.to_thread(
            measure_stt, [utts[s] for s in args.lengths], stt_dir, args.stt_reps
        )
        print("in process: TTS first chunk and edge fallback ...", flush=True)
        _, chunk = first_cut(reply_tokens(args.tokens))
        tts = await measure_tts(chunk, args.stt_reps)
        print("server: voice turns, barge-in, text turns ...", flush=True)
        res = await run_server_part(args, base, stt_dir, utts)
        if args.raw:
            raw = {
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "utterances": {s: [u.text, u.onset_ms, u.offset_ms] for s, u in utts.items()},
                "stt": stt,
                "tts": tts,
                "turns": [asdict(t) for t in res.turns],
                "barges": [asdict(b) for b in res.barges],
                "texts": [asdict(t) for t in res.texts],
                "llm": res.llm,
                "log": [e for e in res.log if e.get("event") in LOG_EVENTS],
                "cpu": res.cpu,
                "loop_lag": res.loop_lag,
                "wall_minus_mono": res.wall_minus_mono,
            }
            args.raw.write_text(json.dumps(raw, indent=1, default=str))
        yield build_report(args, utts, stt, tts, res)

    return await print_tables(args, "dm-voicebench-", tables)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.turns:
        from bench import voice_turns

        return voice_turns.main(
            [
                f"--n={args.turns_n}",
                *(["--keep"] if args.keep else []),
                *(f"--server-env={kv}" for kv in args.server_env),
            ]
        )
    return run_main(args, amain)


if __name__ == "__main__":
    sys.exit(main())
