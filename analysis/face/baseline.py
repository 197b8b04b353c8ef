"""Where the screen is, for gaze: a baseline that survives a user who looks away.

Why not the median of the first seconds: a user who looks away for most of them (at a phone,
a person, the window) makes "away" the screen, and every later look at the screen reads as
off screen. Webcams sit on or beside the screen, so the screen is the nearest place to the
camera's axis that people look at for long, and looking away is further out. The baseline
is therefore the median of the most frontal part of the frames (their gaze direction
closest to the camera's axis): a quarter of them by default, which holds while the user
looks at the screen for more than about an eighth of the time. It is re-estimated over a
rolling window and followed slowly, so a user who moves, or a camera that is moved, is
followed within about half a minute while glances and long looks away are not.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

# Sample columns: head yaw, pitch, roll (degrees), face size (px), iris h, v (ratios).
YAW, PITCH, ROLL, SIZE, H, V = range(6)


@dataclass(slots=True)
class BaselineConfig:
    """Defaults documented in docs/analysis.md."""

    frontal_fraction: float = 0.25
    window_ms: float = 30_000.0
    update_every_ms: float = 1000.0
    follow_tau_ms: float = 20_000.0


class ScreenBaseline:
    """Open-eye samples of a rolling window -> the screen's (yaw, pitch, roll, size, h, v).

    ``h_gain_deg``/``v_gain_deg`` turn iris ratios into eye angles, as the gaze estimator
    does, so head and eyes add up to one direction to rank the frames by.
    """

    def __init__(
        self,
        config: BaselineConfig | None = None,
        h_gain_deg: float = 145.0,
        v_gain_deg: float = 145.0,
    ) -> None:
        self.cfg = config or BaselineConfig()
        self.h_gain, self.v_gain = h_gain_deg, v_gain_deg
        self._t: deque[float] = deque()
        self._x: deque[tuple[float, ...]] = deque()
        self.value: np.ndarray | None = None  # the followed baseline, once started
        self._t_update = 0.0

    def __len__(self) -> int:
        return len(self._t)

    def add(
        self, t_ms: float, yaw: float, pitch: float, roll: float, size: float, h: float, v: float
    ) -> None:
        """One open-eye frame; frames older than the window are dropped."""
        self._t.append(t_ms)
        self._x.append((yaw, pitch, roll, size, h, v))
        lo = t_ms - self.cfg.window_ms
        while self._t and self._t[0] < lo:
            self._t.popleft()
            self._x.popleft()

    def estimate(self) -> np.ndarray | None:
        """Median of the most frontal ``frontal_fraction`` of the window (None: no frames)."""
        if not self._x:
            return None
        x = np.array(self._x)
        # direction relative to the camera's axis: head angles plus eye-in-head angles
        gaze_yaw = x[:, YAW] + (x[:, H] - 0.5) * self.h_gain
        gaze_pitch = x[:, PITCH] - x[:, V] * self.v_gain
        k = max(1, math.ceil(self.cfg.frontal_fraction * len(x)))
        nearest = np.argpartition(np.hypot(gaze_yaw, gaze_pitch), k - 1)[:k]
        return np.median(x[nearest], axis=0)

    def start(self, t_ms: float) -> np.ndarray | None:
        """The first baseline (end of calibration): the estimate, taken as it is."""
        self.value = self.estimate()
        self._t_update = t_ms
        return self.value

    def follow(self, t_ms: float) -> bool:
        """Every ``update_every_ms``, move the baseline towards the current estimate with
        time constant ``follow_tau_ms``. True when it moved."""
        dt = t_ms - self._t_update
        if self.value is None or dt < self.cfg.update_every_ms:
            return False
        est = self.estimate()
        self._t_update = t_ms
        if est is None:
            return False
        self.value = self.value + (1.0 - math.exp(-dt / self.cfg.follow_tau_ms)) * (
            est - self.value
        )
        return True
