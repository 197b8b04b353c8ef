"""Gaze direction from iris position inside the eye, plus head pose -> on/off screen.

Why ratios: an iris position measured relative to the eye's own corners and lids is
independent of face size and position in the frame; the head pose then says where the
eye socket points. Their sum approximates where the user looks, and the user's own
calibration baseline absorbs where the screen sits relative to the camera.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from analysis.face import landmarks as L
from analysis.face.headpose import HeadPose

# Per eye: image-left corner, image-right corner, iris centre.
_GAZE_IDX = np.array(
    [
        L.RIGHT_EYE_OUTER,
        L.RIGHT_EYE_INNER,
        L.RIGHT_IRIS_CENTER,
        L.LEFT_EYE_INNER,
        L.LEFT_EYE_OUTER,
        L.LEFT_IRIS_CENTER,
    ],
    dtype=np.intp,
)


def _eye_ratios(p: list[list[float]], o: int) -> tuple[float, float]:
    ax, ay = p[o]
    bx, by = p[o + 1]
    ix, iy = p[o + 2]
    ux, uy = bx - ax, by - ay
    uu = ux * ux + uy * uy
    if uu <= 0.0:
        return 0.5, 0.0
    h = ((ix - ax) * ux + (iy - ay) * uy) / uu
    # Normal (-uy, ux) points down the image for an upright eye; same length as u.
    v = ((ix - 0.5 * (ax + bx)) * -uy + (iy - 0.5 * (ay + by)) * ux) / uu
    return h, v


def gaze_ratios(landmarks: np.ndarray, width: int = 640, height: int = 480) -> tuple[float, float]:
    """Mean (horizontal, vertical) iris position of both eyes, in pixel space.

    horizontal: projection on the corner-to-corner axis, 0 = image-left corner,
    1 = image-right corner, ~0.5 centred.
    vertical: offset of the iris below the corner line, in eye widths (~0 level with the
    corners, > 0 lower). Measured against the corners, not between the lids, because a
    closing upper lid squeezes a lid-relative ratio and fakes a downward glance in every
    blink; the corners do not move when the lids do.
    """
    p = (landmarks[_GAZE_IDX, :2] * (width, height)).tolist()
    h1, v1 = _eye_ratios(p, 0)
    h2, v2 = _eye_ratios(p, 3)
    return 0.5 * (h1 + h2), 0.5 * (v1 + v2)


@dataclass(slots=True)
class GazeConfig:
    """Defaults documented in docs/analysis.md."""

    h_gain_deg: float = 145.0
    v_gain_deg: float = 145.0
    yaw_limit_deg: float = 25.0
    pitch_limit_deg: float = 20.0
    stability_window_ms: float = 3000.0
    stability_scale_deg: float = 6.0


class GazeEstimator:
    """Per-frame on-screen decision and a windowed gaze stability score."""

    def __init__(self, config: GazeConfig | None = None) -> None:
        self.cfg = config or GazeConfig()
        self.h0, self.v0 = 0.5, 0.0
        self.yaw0, self.pitch0 = 0.0, 0.0
        self.h, self.v = 0.5, 0.0
        self.yaw, self.pitch = 0.0, 0.0
        self.on_screen = True
        self._win: deque[tuple[float, float, float]] = deque()
        self._sy = self._sp = self._syy = self._spp = 0.0

    def set_baseline(self, h0: float, v0: float, yaw0: float, pitch0: float) -> None:
        """Ratios and head angles observed while the user looked at the screen."""
        self.h0, self.v0, self.yaw0, self.pitch0 = h0, v0, yaw0, pitch0

    def update(
        self,
        landmarks: np.ndarray,
        head: HeadPose,
        t_ms: float,
        width: int = 640,
        height: int = 480,
        eyes_closed: bool = False,
    ) -> bool:
        """Update with one frame; returns whether the gaze is on screen.

        While the eyes are closed the iris landmarks are meaningless, so the previous
        decision is kept and the stability window is not fed.
        """
        if eyes_closed:
            self._trim(t_ms)
            return self.on_screen
        cfg = self.cfg
        self.h, self.v = gaze_ratios(landmarks, width, height)
        # Eye-in-head angles: iris displacement / eye width ~ 12 mm sin(angle) / 30 mm, so
        # ~145 degrees per unit for small angles, both ways.
        eye_yaw = (self.h - self.h0) * cfg.h_gain_deg
        eye_pitch = -(self.v - self.v0) * cfg.v_gain_deg
        self.yaw = head.yaw - self.yaw0 + eye_yaw
        self.pitch = head.pitch - self.pitch0 + eye_pitch
        self.on_screen = abs(self.yaw) <= cfg.yaw_limit_deg and abs(self.pitch) <= (
            cfg.pitch_limit_deg
        )
        self._win.append((t_ms, self.yaw, self.pitch))
        self._sy += self.yaw
        self._sp += self.pitch
        self._syy += self.yaw * self.yaw
        self._spp += self.pitch * self.pitch
        self._trim(t_ms)
        return self.on_screen

    def _trim(self, t_ms: float) -> None:
        lo = t_ms - self.cfg.stability_window_ms
        win = self._win
        while win and win[0][0] < lo:
            _, y, p = win.popleft()
            self._sy -= y
            self._sp -= p
            self._syy -= y * y
            self._spp -= p * p
        if not win:
            self._sy = self._sp = self._syy = self._spp = 0.0

    @property
    def samples(self) -> int:
        """Gaze samples currently in the stability window."""
        return len(self._win)

    @property
    def dispersion_deg(self) -> float:
        """sqrt(var(yaw) + var(pitch)) of the gaze direction over the window."""
        n = len(self._win)
        if n < 2:
            return 0.0
        vy = self._syy / n - (self._sy / n) ** 2
        vp = self._spp / n - (self._sp / n) ** 2
        return math.sqrt(max(vy, 0.0) + max(vp, 0.0))

    @property
    def stability(self) -> float:
        """1 / (1 + (dispersion / scale)^2): 1 = perfectly steady, 0.5 at ``scale`` degrees."""
        s = self.dispersion_deg / self.cfg.stability_scale_deg
        return 1.0 / (1.0 + s * s)
