"""bench/voice.py part 1, in process (no server): Whisper's final and partial decode times per
utterance length, espeak-ng's time to its first audio chunk (a term of the first-audio target)
and what the edge-tts -> espeak-ng fallback costs when edge is unreachable (simulated on
loopback only)."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.voice_client import RATE, Utt


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
