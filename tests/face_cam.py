"""A desktop client's face tracker over the real WebSocket, next to ``tests.mic.Mic``: the
MediaPipe landmarks of a real face (tests/analysis/face_synth.py) sent as binary 0x04 frames
at a webcam's rate, looking at the screen or away from it on the mic's timeline (so a test
says "look away from this sample to that one" as it says "speak here").

Looking away turns the eyes 0.3 eye widths aside (about 45 degrees: well off screen for the
server's gaze estimate), a pure eye movement as face_synth.shift_iris makes it. Every frame
carries a little pixel noise, like a real tracker's. The face is calibrated looking at the
screen before anything else happens.

Used by tests/turns and bench/voice_gaze.py."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from server.hub.protocol import FACE_FRAME_HEADER, FACE_LANDMARKS
from tests.mic import Background, Mic
from tests.server_harness import WsClient

AWAY_EYE_WIDTHS = 0.3
CALIBRATION_MS = 5000  # analysis/face/tracker.py TrackerConfig.calibration_ms
CALIBRATION_FRAMES = 12  # (min_calibration_frames is 10)


class Looks:
    """The real face's landmarks looking at the screen or away, with a little pixel noise."""

    def __init__(self, seed: int = 0) -> None:
        from tests.analysis import face_synth as fs

        self.rng = np.random.default_rng(seed)
        self.noise = 0.4 / np.array([fs.W, fs.H])  # pixels, in normalised coordinates
        self.on = fs.neutral_frame()
        self.off = fs.shift_iris(self.on, AWAY_EYE_WIDTHS)

    def landmarks(self, away: bool) -> np.ndarray:
        lm = (self.off if away else self.on).copy()
        lm[:, :2] += self.rng.normal(0.0, 1.0, (lm.shape[0], 2)) * self.noise
        return lm


class FaceCam(Background):
    def __init__(self, ws: WsClient, mic: Mic, *, fps: float = 15.0, seed: int = 0) -> None:
        self.ws, self.mic, self.fps = ws, mic, fps
        self.looks = Looks(seed)
        self.away: list[tuple[int, int]] = []  # mic sample ranges looking away
        self.sent = 0

    def look_away(self, start: int, end: int) -> None:
        """Look away from mic sample ``start`` until ``end`` (then back at the screen)."""
        self.away.append((start, end))

    def looking_away(self) -> bool:
        now = self.mic.now_sample
        return any(a <= now < b for a, b in self.away)

    def frame(self, t_ms: int) -> bytes:
        lm = self.looks.landmarks(self.looking_away())
        head = FACE_FRAME_HEADER.pack(FACE_LANDMARKS, 3, lm.shape[0], t_ms)
        return head + lm.astype("<f4").tobytes()

    async def _run(self) -> None:
        # The server's tracker calibrates over the first CALIBRATION_MS of face time: a user
        # who has sat in front of the screen for a while. Sent at once, its clock running
        # ahead (as a webcam's frames would, had the session started earlier). (Looking away
        # in it no longer moves the screen: tests/analysis/test_face_tracker.py.)
        for k in range(CALIBRATION_FRAMES):
            await self.ws.send_raw(self.frame(k * CALIBRATION_MS // (CALIBRATION_FRAMES - 1)))
            await asyncio.sleep(0.005)  # paced: the server keeps only the newest waiting frame
        t0 = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, t0 + self.sent / self.fps - time.monotonic()))
            ms = CALIBRATION_MS + 1 + round((time.monotonic() - t0) * 1000)
            await self.ws.send_raw(self.frame(ms))
            self.sent += 1
