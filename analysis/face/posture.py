"""Posture score 0..100 from *sustained* deviation of head pose and distance from the user's
own baseline.

Why relative to a baseline: cameras sit above, below or beside screens, so an absolute
pitch of -10 degrees may be perfectly upright for one user and a slouch for another. Why
smoothed: a glance at the keyboard is not bad posture; holding it for ten seconds is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.face import landmarks as L
from analysis.face.headpose import HeadPose


def face_size_px(
    landmarks: np.ndarray, yaw_deg: float, width: int = 640, height: int = 480
) -> float:
    """Outer eye-corner distance in pixels, corrected for yaw foreshortening.

    Proportional to 1 / distance from the camera, so its ratio to the baseline says
    whether the user leaned in (> 1) or back (< 1).
    """
    a = landmarks[L.RIGHT_EYE_OUTER]
    b = landmarks[L.LEFT_EYE_OUTER]
    d = math.hypot((float(b[0]) - float(a[0])) * width, (float(b[1]) - float(a[1])) * height)
    return d / max(math.cos(math.radians(yaw_deg)), 0.5)


def _ramp(x: float, deadzone: float, span: float) -> float:
    """0 inside the dead zone, rising linearly to 1 at ``deadzone + span``."""
    r = (x - deadzone) / span
    return 0.0 if r <= 0.0 else (1.0 if r >= 1.0 else r)


@dataclass(slots=True)
class PostureConfig:
    """Defaults documented in docs/analysis.md; weights sum to 1."""

    smoothing_tau_ms: float = 3000.0
    pitch_deadzone_deg: float = 5.0
    pitch_span_deg: float = 20.0
    pitch_weight: float = 0.4
    yaw_deadzone_deg: float = 10.0
    yaw_span_deg: float = 25.0
    yaw_weight: float = 0.25
    roll_deadzone_deg: float = 5.0
    roll_span_deg: float = 15.0
    roll_weight: float = 0.15
    distance_deadzone: float = 0.10
    distance_span: float = 0.30
    distance_weight: float = 0.2
    max_dt_ms: float = 1000.0


class PostureEstimator:
    """Call :meth:`update` per frame; :meth:`set_baseline` once calibration is done."""

    def __init__(self, config: PostureConfig | None = None) -> None:
        self.cfg = config or PostureConfig()
        self.baseline: tuple[float, float, float, float] | None = None
        self._ema: list[float] | None = None
        self._t_prev: float | None = None
        self.penalties = (0.0, 0.0, 0.0, 0.0)
        self.score = 100.0

    def set_baseline(self, yaw: float, pitch: float, roll: float, size_px: float) -> None:
        self.baseline = (yaw, pitch, roll, max(size_px, 1e-6))

    def update(self, pose: HeadPose, size_px: float, t_ms: float) -> float:
        """Smooth (yaw, pitch, roll, size), compare with the baseline, return the score.

        Without a baseline yet, the first frame serves as a provisional one.
        """
        x = (pose.yaw, pose.pitch, pose.roll, size_px)
        if self.baseline is None:
            self.baseline = (x[0], x[1], x[2], max(x[3], 1e-6))
        e = self._ema
        if e is None or self._t_prev is None:
            e = self._ema = list(x)
        else:
            dt = min(max(t_ms - self._t_prev, 0.0), self.cfg.max_dt_ms)
            a = 1.0 - math.exp(-dt / self.cfg.smoothing_tau_ms)
            for i in range(4):
                e[i] += a * (x[i] - e[i])
        self._t_prev = t_ms
        return self._score(e, self.baseline)

    def _score(self, ema: list[float], baseline: tuple[float, float, float, float]) -> float:
        cfg = self.cfg
        yaw, pitch, roll, size = ema
        y0, p0, r0, s0 = baseline
        p_pitch = _ramp(p0 - pitch, cfg.pitch_deadzone_deg, cfg.pitch_span_deg)
        p_yaw = _ramp(abs(yaw - y0), cfg.yaw_deadzone_deg, cfg.yaw_span_deg)
        p_roll = _ramp(abs(roll - r0), cfg.roll_deadzone_deg, cfg.roll_span_deg)
        p_dist = _ramp(abs(size / s0 - 1.0), cfg.distance_deadzone, cfg.distance_span)
        self.penalties = (p_pitch, p_yaw, p_roll, p_dist)
        penalty = (
            cfg.pitch_weight * p_pitch
            + cfg.yaw_weight * p_yaw
            + cfg.roll_weight * p_roll
            + cfg.distance_weight * p_dist
        )
        self.score = 100.0 * (1.0 - min(penalty, 1.0))
        return self.score
