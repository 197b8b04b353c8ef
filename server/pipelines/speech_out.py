"""Speech output for one response: streamed reply text in, ordered audio frames out.

The reply is cut into sentences (early first cut so the first audio starts before the
reply is complete); the next sentence is synthesized while the current one is sent; audio
is converted to the session's format (mp3 or pcm16, 24 kHz mono) by one ordered, stateful
converter so the stream stays gapless."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from server.avatar.emotions import expression
from server.avatar.visemes import Keyframe, praat, viseme_keyframes
from server.logging import get_logger
from server.pipelines.chunker import EmotionTrack, SentenceChunker, speakable
from server.providers.tts.base import AudioChunk, TTSError, TTSProvider

log = get_logger(__name__)

OUT_RATE = 24_000
OutFormat = Literal["mp3", "pcm16"]
_MAX_AHEAD = 2  # sentences being synthesized at once: the one being sent and the next


@dataclass
class SpokenChunk:
    text: str
    start_ms: float
    duration_ms: float
    emotion: str | None = None  # the persona's mark for this sentence (avatar/emotions.py)


class AudioConverter:
    """Any provider chunk (mp3 / pcm16 / wav at any rate) -> the session's output format.

    Stateful per response: one mp3 decoder, one resampler and one mp3 encoder, so chunk
    boundaries leave no gaps. Returns (bytes to send, milliseconds of audio they carry)."""

    def __init__(self, fmt: OutFormat) -> None:
        import av

        self._av = av
        self.fmt = fmt
        self._decoder: Any = None
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=OUT_RATE)
        self._encoder: Any = None
        self._pending_ms = 0.0
        # The PCM16 mono audio of the last converted chunk and its rate (the mouth track
        # is derived from it, whatever format is sent).
        self.last_pcm = b""
        self.last_rate = OUT_RATE

    def convert(self, chunk: AudioChunk) -> tuple[bytes, float]:
        if chunk.format == "mp3" and self.fmt == "mp3":
            return chunk.data, self._mp3_ms(chunk.data)
        pcm = self._to_pcm(chunk)
        self.last_pcm, self.last_rate = pcm, OUT_RATE
        ms = len(pcm) / 2 / OUT_RATE * 1000
        if self.fmt == "pcm16":
            return pcm, ms
        return self._encode(pcm), ms

    def flush(self) -> bytes:
        """The encoder's tail at the end of the response."""
        if self._encoder is None:
            return b""
        return b"".join(bytes(p) for p in self._encoder.encode(None))

    def _mp3_ms(self, data: bytes) -> float:
        if self._decoder is None:
            self._decoder = self._av.CodecContext.create("mp3", "r")
        samples, rate = 0, OUT_RATE
        decoded: list[np.ndarray] = []
        for packet in self._decoder.parse(data):
            for frame in self._decoder.decode(packet):
                samples += frame.samples
                rate = frame.sample_rate
                decoded.append(frame.to_ndarray()[0])
        mono = np.concatenate(decoded) if decoded else np.zeros(0, dtype=np.float32)
        if mono.dtype.kind == "f":
            mono = np.clip(mono * 32767, -32768, 32767)
        self.last_pcm, self.last_rate = mono.astype("<i2").tobytes(), rate
        return samples / rate * 1000

    def _to_pcm(self, chunk: AudioChunk) -> bytes:
        av = self._av
        if chunk.format == "mp3":
            if self._decoder is None:
                self._decoder = av.CodecContext.create("mp3", "r")
            frames = [f for p in self._decoder.parse(chunk.data) for f in self._decoder.decode(p)]
        else:
            data = chunk.data
            if chunk.format == "wav" and data[:4] == b"RIFF":
                data = data[44:]
            data = data[: len(data) // 2 * 2]
            if not data:
                return b""
            arr = np.frombuffer(data, dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(arr, format="s16", layout="mono")
            frame.sample_rate = chunk.sample_rate
            frames = [frame]
        out = bytearray()
        for f in frames:
            for r in self._resampler.resample(f):
                out += r.to_ndarray().astype("<i2").tobytes()
        return bytes(out)

    def _encode(self, pcm: bytes) -> bytes:
        av = self._av
        if not pcm:
            return b""
        if self._encoder is None:
            enc = av.CodecContext.create("libmp3lame", "w")
            enc.sample_rate = OUT_RATE
            enc.layout = "mono"
            enc.format = "s16p"
            enc.bit_rate = 48_000
            enc.open()
            self._encoder = enc
        arr = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(arr, format="s16p", layout="mono")
        frame.sample_rate = OUT_RATE
        return b"".join(bytes(p) for p in self._encoder.encode(frame))


class SpeechOut:
    def __init__(
        self,
        tts: TTSProvider,
        voice: str | None,
        fmt: OutFormat,
        number: int,
        send_audio: Callable[[int, bytes], Awaitable[None]],
        *,
        user_id: str | None = None,
        chunker: SentenceChunker | None = None,
        on_sentence: Callable[[SpokenChunk], Awaitable[None]] | None = None,
        on_visemes: Callable[[int, list[Keyframe], str | None], Awaitable[None]] | None = None,
        on_pcm: Callable[[bytes, int], None] | None = None,
    ) -> None:
        self.tts = tts
        self.voice = voice
        self.fmt = fmt
        self.number = number
        self._send_audio = send_audio  # (chunk seq, audio bytes): the protocol frames it
        self.user_id = user_id
        self.chunker = chunker or SentenceChunker()
        self._on_sentence = on_sentence  # a sentence's audio is all sent (per-sentence clients)
        self._on_visemes = on_visemes  # each chunk's mouth timeline, right after the chunk
        self._on_pcm = on_pcm  # each chunk's PCM16 and rate as it is sent (echo canceller)
        self.emotions = EmotionTrack()
        self._texts: asyncio.Queue[tuple[str, str | None] | None] = asyncio.Queue()
        self.spoken: list[SpokenChunk] = []
        self.seq = 0
        self.duration_ms = 0.0
        self.first_audio_at: float | None = None
        self.error: str | None = None
        self._finished = False

    # --- text in ----------------------------------------------------------------------
    def feed(self, delta: str) -> None:
        self.emotions.feed(delta)
        self._queue(self.chunker.push(delta))

    def mark(self, emotion: str) -> None:
        """The persona marked an emotion here in the text (before the next delta)."""
        self.emotions.mark(emotion)

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._queue(self.chunker.flush())
        self._texts.put_nowait(None)

    def _queue(self, chunks: list[str]) -> None:
        for chunk in chunks:
            emotion = self.emotions.chunk(chunk)
            if speakable(chunk):
                self._texts.put_nowait((chunk, emotion))

    # --- audio out --------------------------------------------------------------------
    async def run(self) -> None:
        """Until finish(): synthesize ahead, send in order. TTS failure stops the audio
        (``error`` says why) but never the text reply."""
        if self._on_visemes is not None:  # loaded while the first sentence is synthesized
            self._warm = asyncio.ensure_future(asyncio.to_thread(praat))
        order: asyncio.Queue[tuple[str, str | None, asyncio.Queue[Any]] | None] = asyncio.Queue()
        ahead = asyncio.Semaphore(_MAX_AHEAD)
        synths: list[asyncio.Task[None]] = []

        async def plan() -> None:
            while (item := await self._texts.get()) is not None:
                text, emotion = item
                await ahead.acquire()
                q: asyncio.Queue[Any] = asyncio.Queue()
                synths.append(asyncio.create_task(self._synthesize(text, q, ahead)))
                await order.put((text, emotion, q))
            await order.put(None)

        planner = asyncio.create_task(plan())
        converter = await asyncio.to_thread(AudioConverter, self.fmt)
        side: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
        follower = asyncio.create_task(self._follow(side))
        try:
            await self._stream(order, converter, side)
            side.put_nowait(None)
            await follower  # every mouth timeline and sentence end is out when run() ends
        finally:
            follower.cancel()
            planner.cancel()
            for t in synths:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(planner, follower, *synths, return_exceptions=True)

    async def _stream(
        self,
        order: asyncio.Queue[tuple[str, str | None, asyncio.Queue[Any]] | None],
        converter: AudioConverter,
        side: asyncio.Queue[tuple[Any, ...] | None],
    ) -> None:
        while (item := await order.get()) is not None:
            text, emotion, q = item
            start = self.duration_ms
            while (piece := await q.get()) is not None:
                if isinstance(piece, TTSError):
                    self.error = str(piece)
                    return
                data, ms = await asyncio.to_thread(converter.convert, piece)
                self.duration_ms += ms
                seq = self.seq
                await self._send(data)
                if self._on_pcm is not None and data and converter.last_pcm:
                    self._on_pcm(converter.last_pcm, converter.last_rate)
                if self._on_visemes is not None and data and converter.last_pcm:
                    pcm, rate = converter.last_pcm, converter.last_rate
                    side.put_nowait(("chunk", seq, pcm, rate, emotion))
            self.spoken.append(SpokenChunk(text, start, self.duration_ms - start, emotion))
            side.put_nowait(("sentence", self.spoken[-1]))
        await self._send(await asyncio.to_thread(converter.flush))

    async def _follow(self, side: asyncio.Queue[tuple[Any, ...] | None]) -> None:
        """Mouth timelines and sentence ends, in order, off the audio's path: the audio
        never waits for the analysis."""
        while (item := await side.get()) is not None:
            if item[0] == "chunk" and self._on_visemes is not None:
                _, seq, pcm, rate, emotion = item
                keys = await asyncio.to_thread(viseme_keyframes, pcm, rate)
                face = expression(emotion)  # the sentence's expression, held on every keyframe
                for k in keys:
                    k.targets = face | k.targets
                await self._on_visemes(seq, keys, emotion)
            elif item[0] == "sentence" and self._on_sentence is not None:
                await self._on_sentence(item[1])

    async def _synthesize(self, text: str, q: asyncio.Queue[Any], ahead: asyncio.Semaphore) -> None:
        try:
            async for chunk in self.tts.synthesize(text, self.voice, user_id=self.user_id):
                await q.put(chunk)
        except TTSError as e:
            await q.put(e)
        except Exception as e:  # a provider bug must not kill the reply
            log.warning("tts_failed", error=f"{type(e).__name__}: {e}")
            await q.put(TTSError(f"speech synthesis failed ({type(e).__name__})"))
        finally:
            ahead.release()
            await q.put(None)

    async def _send(self, data: bytes) -> None:
        if not data:
            return
        if self.first_audio_at is None:
            self.first_audio_at = time.monotonic()
        await self._send_audio(self.seq, data)
        self.seq += 1

    # --- what was heard ---------------------------------------------------------------
    def heard_text(self, played_ms: float) -> str:
        """The reply text the user heard in ``played_ms`` of playback: whole sentences
        played, plus the words of the sentence in progress in proportion to its time."""
        out: list[str] = []
        for c in self.spoken:
            if played_ms >= c.start_ms + c.duration_ms - 1:
                out.append(c.text)
                continue
            if played_ms > c.start_ms and c.duration_ms > 0:
                words = c.text.split()
                n = int(len(words) * (played_ms - c.start_ms) / c.duration_ms)
                if n:
                    out.append(" ".join(words[:n]))
            break
        return " ".join(out)
