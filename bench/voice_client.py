"""bench/voice.py's wire client and microphone, also bench/protocol_latency.py's: the
utterances the user says (espeak-ng speech), a /v1/ws client that stamps every frame's receive
time, and a mic that streams 20 ms PCM16 frames in real time on a monotonic schedule, so end
of speech is the send time of a known frame."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection

RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000

UTTERANCES = {  # espeak-ng en-us at its default rate; the run prints the real lengths
    2: "Please turn on all the kitchen lights now.",
    3: "Could you remind me to call my sister about the trip on Friday?",
    4: "I spent the whole afternoon at the library reading about the history of big ships.",
    5: "I would like to plan a short trip to the mountains next month, maybe somewhere "
    "quiet with a lake.",
    6: "My friend and I walked along the river this morning and then stopped for coffee at "
    "a small bakery near the old bridge.",
}


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


# --- the client ----------------------------------------------------------------------------------
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
