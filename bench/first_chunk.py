"""How many words the reply's first TTS chunk should wait for (issue 19,
``TTS_FIRST_CHUNK_WORDS``), per engine: first token -> first audio, and the playback stalls a
short first chunk costs when the engine is slow.

In process: the reply's tokens (the fake LLM's eight-word sentences, one word per token) are
fed to the server's own ``SpeechOut`` at ``--token-ms`` per token; a player starts at the
first audio and plays every chunk in order, and a stall is audio that arrived after the audio
before it had finished playing (a silence the listener hears mid-reply).

Engines: espeak-ng (offline, the fallback voice) and Fish Speech through the tests'
``FakeFish`` on 127.0.0.1 with a GPU server's timing (first audio after ``--fish-ttfa-ms``,
then streamed at ``--fish-rtf`` x real time; ~15 characters per second of speech). A
fish-speech API server runs one inference at a time, so the requests are served one after
the other (``--fish-parallel`` lets them overlap instead).

Usage: ``uv run python -m bench.first_chunk [--reps 5] [--token-ms 20]``."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

from bench.stats import p50_p95
from server.pipelines.chunker import SentenceChunker
from server.pipelines.speech_out import SpeechOut
from server.providers.tts.base import AudioChunk, TTSProvider, Voice
from server.providers.tts.espeak import EspeakTTS
from server.providers.tts.fish import FishSpeechTTS
from tests.fakes.fish_server import FakeFish
from tests.fakes.openai_server import FakeOpenAI

BYTES_PER_MS = 48  # pcm16 mono at 24 kHz


class OneAtATime(TTSProvider):
    """``inner`` serving one synthesis at a time (a fish-speech server's single worker)."""

    def __init__(self, inner: TTSProvider) -> None:
        self.inner = inner
        self.name = inner.name
        self._lock = asyncio.Lock()

    async def synthesize(
        self, text: str, voice: str | None = None, *, user_id: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        async with self._lock:
            async for chunk in self.inner.synthesize(text, voice, user_id=user_id):
                yield chunk

    async def list_voices(self) -> list[Voice]:
        return await self.inner.list_voices()


async def one_reply(
    tts: TTSProvider, voice: str | None, words: int, tokens: list[str], token_ms: float
) -> tuple[float, float, int]:
    """(first token -> first audio ms, stalled ms, stalls) for one spoken reply."""
    arrivals: list[tuple[float, float]] = []  # (arrival, audio ms)

    async def send(seq: int, data: bytes) -> None:
        arrivals.append((time.monotonic(), len(data) / BYTES_PER_MS))

    out = SpeechOut(tts, voice, "pcm16", 1, send, chunker=SentenceChunker(first_words=words))
    runner = asyncio.create_task(out.run())
    t0 = time.monotonic()
    for i, tok in enumerate(tokens):
        await asyncio.sleep(max(0.0, t0 + i * token_ms / 1000 - time.monotonic()))
        out.feed(tok)
    out.finish()
    await runner
    first = (arrivals[0][0] - t0) * 1000
    play_end, stalled, stalls = arrivals[0][0], 0.0, 0
    for at, ms in arrivals:
        if at > play_end + 0.005:  # 5 ms: a player's buffer hides less than nothing
            stalled += (at - play_end) * 1000
            stalls += 1
        play_end = max(play_end, at) + ms / 1000
    return first, stalled, stalls


async def engine_rows(
    name: str, tts: TTSProvider, voice: str | None, args: argparse.Namespace
) -> list[str]:
    tokens = FakeOpenAI.default_tokens(args.tokens)
    await one_reply(tts, voice, 4, tokens[:9], args.token_ms)  # warm: library, connection
    rows = []
    for words in args.words:
        firsts, stalled, counts = [], [], []
        for _ in range(args.reps):
            f, s, c = await one_reply(tts, voice, words, tokens, args.token_ms)
            firsts.append(f)
            stalled.append(s)
            counts.append(c)
        rows.append(
            f"{name:<34} {words:>5}   {p50_p95(firsts):>17}   {p50_p95(stalled):>17}"
            f"   {sum(c > 0 for c in counts)}/{args.reps}"
        )
    return rows


async def amain(args: argparse.Namespace) -> int:
    print(
        f"first TTS chunk: {args.tokens} tokens at {args.token_ms:g} ms, "
        f"{args.reps} replies per cell"
    )
    header = (
        f"{'engine':<34} {'words':>5}   {'tok->audio p50/p95':>17}   "
        f"{'stalled ms p50/p95':>17}   stalled"
    )
    rows = await engine_rows("espeak-ng (offline)", EspeakTTS(), "en-us", args)
    fish_server = FakeFish(
        seconds_per_char=1 / 15,
        first_chunk_ms=args.fish_ttfa_ms,
        stream_chunk_ms=200,
        chunk_delay_ms=200 * args.fish_rtf,
    )
    with fish_server:
        fish: TTSProvider = FishSpeechTTS(fish_server.base_url)
        if not args.fish_parallel:
            fish = OneAtATime(fish)
        label = f"fish (ttfa {args.fish_ttfa_ms:g} ms, rtf {args.fish_rtf:g})"
        rows += await engine_rows(label, fish, None, args)
    print(header)
    print("-" * len(header))
    print("\n".join(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=24, help="reply length (8 words a sentence)")
    ap.add_argument("--token-ms", type=float, default=20.0, help="LLM time per token")
    ap.add_argument("--words", type=int, nargs="+", default=[0, 2, 3, 4])
    ap.add_argument("--fish-ttfa-ms", type=float, default=400.0)
    ap.add_argument("--fish-rtf", type=float, default=0.5, help="synthesis time / audio time")
    ap.add_argument("--fish-parallel", action="store_true")
    return asyncio.run(amain(ap.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
