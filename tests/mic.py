"""A microphone over the real WebSocket, as a desktop client has one: 20 ms PCM16 frames on
a real-time schedule, room noise when nobody speaks, queued speech, and (optionally) the
companion's own reply coming back from the speakers: every reply chunk the server sends is
"played" (``response.audio.played`` with ``played_ms: 0`` at its start, then the total at
its end), attenuated, delayed and mixed into the mic, like a laptop without headphones.

Used by tests/turns and bench/voice.py."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from typing import Any, Self

import numpy as np

from tests.server_harness import WsClient
from tests.speech import resample

RATE = 16_000
FRAME = 320  # 20 ms
OUT_RATE = 24_000
_TIMELINE_S = 600


class Background:
    """Runs ``_run`` as a task for as long as the ``async with`` block lasts."""

    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        raise NotImplementedError


class Mic(Background):
    def __init__(
        self,
        ws: WsClient,
        *,
        noise_dbfs: float | None = -60.0,
        echo_db: float | None = None,
        echo_delay_ms: int = 60,
        seed: int = 0,
    ) -> None:
        self.ws = ws
        self.rng = np.random.default_rng(seed)
        self.noise = None if noise_dbfs is None else 10 ** (noise_dbfs / 20)
        self.echo_gain = None if echo_db is None else 10 ** (echo_db / 20)
        self.echo_delay = echo_delay_ms * RATE // 1000
        self.n = 0  # frames sent
        self.speech = np.zeros(_TIMELINE_S * RATE, np.float32)  # what the user says
        self.playout = np.zeros(_TIMELINE_S * RATE, np.float32)  # what the speakers play
        self.speech_end = 0  # sample index after the last queued speech
        self.sent_at: dict[int, float] = {}  # frame index -> monotonic send time
        self.played: dict[str, dict[str, Any]] = {}  # response_id -> {start, samples}
        self._play_end = 0
        self._chunks_seen = len(ws.binary)  # a mic opened later never plays older replies
        self._events_seen = len(ws.events)
        self._stopped: set[str] = set()
        self.stalls: dict[int, float] = {}  # frame index -> seconds the sender stalls before it

    def stall(self, sample: int, ms: int) -> None:
        """Send nothing for ``ms`` before the frame holding ``sample`` (a network or machine
        stall); the frames held back then follow at once, as a real client catches up."""
        self.stalls[sample // FRAME] = ms / 1000

    @property
    def now_sample(self) -> int:
        return self.n * FRAME

    def say(self, audio: np.ndarray, gap_ms: int = 0) -> tuple[int, int]:
        """Queue speech after what is queued (at least ``gap_ms`` from now); returns its
        (first, end) sample indices on the mic timeline."""
        start = max(self.speech_end, self.now_sample + FRAME) + gap_ms * RATE // 1000
        self.speech[start : start + audio.size] += audio
        self.speech_end = start + audio.size
        return start, self.speech_end

    async def until(self, sample: int) -> float:
        """Wait until the frame holding ``sample`` was sent; returns its send time."""
        frame = sample // FRAME
        while frame not in self.sent_at:  # noqa: ASYNC110 - the sender is a fixed schedule
            await asyncio.sleep(0.01)
        return self.sent_at[frame]

    async def _run(self) -> None:
        t0 = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, t0 + self.n * 0.02 - time.monotonic()))
            if (stall := self.stalls.pop(self.n, None)) is not None:
                await asyncio.sleep(stall)
            await self._play_new_chunks()
            i = self.now_sample
            frame = self.speech[i : i + FRAME].copy()
            if self.echo_gain is not None and i >= self.echo_delay:
                j = i - self.echo_delay
                frame += self.echo_gain * self.playout[j : j + FRAME]
            if self.noise is not None:
                frame += self.rng.normal(0, self.noise, FRAME).astype(np.float32)
            pcm = (np.clip(frame, -1, 1) * 32767).round().astype("<i2").tobytes()
            await self.ws.send_raw(b"\x01" + pcm)
            self.sent_at[self.n] = time.monotonic()
            self.n += 1
            self._stop_cancelled()
            await self._report_played()

    def _stop_cancelled(self) -> None:
        """Like the web client: a reply whose response.done says cancelled stops playing at
        once (the events the test has read so far)."""
        events = self.ws.events[self._events_seen :]
        self._events_seen += len(events)
        for e in events:
            if e["type"] == "response.done" and e.get("status") == "cancelled":
                self.stop_playback(e["response_id"])

    async def _play_new_chunks(self) -> None:
        """Reply audio received since the last frame starts playing now (or after the
        chunk before it): PCM16 24 kHz resampled to the mic's 16 kHz."""
        chunks = self.ws.binary[self._chunks_seen :]
        self._chunks_seen += len(chunks)
        for b in chunks:
            kind, number, _seq = struct.unpack(">BII", b[:9])
            if kind != 0x11:
                continue
            rid = f"resp_{number}"
            if rid in self._stopped:
                continue
            audio = np.frombuffer(b[9:], dtype="<i2").astype(np.float32) / 32768
            audio = resample(audio, OUT_RATE, RATE)
            start = max(self._play_end, self.now_sample)
            if rid not in self.played:
                self.played[rid] = {"start": start, "samples": 0, "reported": None}
                await self.ws.send(
                    {"type": "response.audio.played", "response_id": rid, "played_ms": 0}
                )
            self.playout[start : start + audio.size] = audio
            self._play_end = start + audio.size
            self.played[rid]["samples"] += audio.size

    async def _report_played(self) -> None:
        """Every 200 ms of playback, say how much was played (the server truncates to it)."""
        for rid, p in self.played.items():
            done = min(self.now_sample - p["start"], p["samples"])
            if done <= 0 or (p["reported"] is not None and done - p["reported"] < RATE // 5):
                continue
            p["reported"] = done
            await self.ws.send(
                {"type": "response.audio.played", "response_id": rid, "played_ms": done // 16}
            )

    def stop_playback(self, rid: str) -> None:
        """The client stops a cancelled reply at once."""
        self._stopped.add(rid)
        p = self.played.get(rid)
        if p is not None:
            cut = self.now_sample
            self.playout[cut : p["start"] + p["samples"]] = 0
            p["samples"] = max(0, cut - p["start"])
            self._play_end = min(self._play_end, cut)
