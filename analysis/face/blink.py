"""Blink detection: eye aspect ratio (EAR) + optional blendshape score, per-user baseline,
and a four-state machine so that landmark noise and long eye closures are not blinks.

Why adaptive: open-eye EAR differs a lot between people, cameras and head pitch (0.2-0.35),
so a fixed 0.2 threshold misses blinks for some users and fires constantly for others.
We track the user's open-eye EAR with a running median and threshold relative to it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from analysis.face import landmarks as L

# Pairs of points whose distances make up EAR: (p2,p6), (p3,p5), (p1,p4) per eye.
_A = np.array(
    [L.RIGHT_EYE_EAR[i] for i in (1, 2, 0)] + [L.LEFT_EYE_EAR[i] for i in (1, 2, 0)],
    dtype=np.intp,
)
_B = np.array(
    [L.RIGHT_EYE_EAR[i] for i in (5, 4, 3)] + [L.LEFT_EYE_EAR[i] for i in (5, 4, 3)],
    dtype=np.intp,
)


def eye_aspect_ratios(
    landmarks: np.ndarray, width: int = 640, height: int = 480
) -> tuple[float, float]:
    """(right, left) EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|), in pixel space.

    Pixel space matters: normalised x and y have different units when width != height.
    """
    d = (landmarks[_A, :2] - landmarks[_B, :2]) * (width, height)
    n = np.sqrt(np.einsum("ij,ij->i", d, d))
    right = (n[0] + n[1]) / (2.0 * n[2]) if n[2] > 0 else 0.0
    left = (n[3] + n[4]) / (2.0 * n[5]) if n[5] > 0 else 0.0
    return float(right), float(left)


class QuantileTracker:
    """Running estimate of a quantile without storing samples (stochastic quantile EMA).

    Each update moves the estimate up by ``rate*q*scale`` when the sample is above it and
    down by ``rate*(1-q)*scale`` otherwise, so a minority of outliers (blink frames) barely
    moves it, while a sustained change is followed with time constant ``tau_ms``.
    ``relative=True`` scales steps by the estimate itself (for EAR, whose range varies).
    """

    __slots__ = ("q", "relative", "scale", "tau_ms", "value")

    def __init__(
        self, q: float, tau_ms: float, *, scale: float = 1.0, relative: bool = False
    ) -> None:
        self.q, self.tau_ms, self.scale, self.relative = q, tau_ms, scale, relative
        self.value: float | None = None

    def update(self, x: float, dt_ms: float) -> None:
        if self.value is None:
            self.value = x
            return
        step = (dt_ms / self.tau_ms) * (abs(self.value) if self.relative else self.scale)
        self.value += step * (self.q if x >= self.value else self.q - 1.0)


class EyeState(IntEnum):
    OPEN = 0
    CLOSING = 1
    CLOSED = 2
    OPENING = 3


@dataclass(slots=True)
class BlinkConfig:
    """Defaults tuned for 15-60 fps webcams; every value is documented in docs/analysis.md."""

    warmup_frames: int = 10
    baseline_tau_ms: float = 3000.0
    full_closure_ratio: float = 0.5
    closing_threshold: float = 0.3
    closed_threshold: float = 0.7
    min_blink_ms: float = 50.0
    max_closed_ms: float = 400.0
    max_closing_ms: float = 300.0
    max_opening_ms: float = 400.0
    blendshape_weight: float = 0.5
    blendshape_full_delta: float = 0.4
    rate_window_ms: float = 60_000.0
    rate_min_span_ms: float = 10_000.0
    max_dt_ms: float = 200.0


class BlinkDetector:
    """Counts blinks from a stream of frames; call :meth:`update` once per frame in time order."""

    def __init__(self, config: BlinkConfig | None = None) -> None:
        self.cfg = config or BlinkConfig()
        self.ear_baseline = QuantileTracker(0.5, self.cfg.baseline_tau_ms, relative=True)
        self.bs_baseline = QuantileTracker(0.5, self.cfg.baseline_tau_ms, scale=0.1)
        self._warm_ear: list[float] = []
        self._warm_bs: list[float] = []
        self.state = EyeState.OPEN
        self.ear = 0.0
        self.closure = 0.0
        self.count = 0
        self.long_closures = 0
        self.blink_times: list[float] = []  # start of every blink, for session timelines
        self._recent: deque[float] = deque()  # starts inside the rate window
        self._t_prev: float | None = None
        self._t_first: float | None = None
        self._t_event = 0.0
        self._t_state = 0.0
        self._t_closed_first = 0.0
        self._long = False

    @property
    def warm(self) -> bool:
        return self.ear_baseline.value is not None

    def update(
        self,
        landmarks: np.ndarray,
        t_ms: float,
        blendshapes: dict[str, float] | None = None,
        width: int = 640,
        height: int = 480,
    ) -> bool:
        """Feed one frame; returns True when a blink completed on this frame."""
        right, left = eye_aspect_ratios(landmarks, width, height)
        bs = None
        if blendshapes is not None:
            bl, br = blendshapes.get("eyeBlinkLeft"), blendshapes.get("eyeBlinkRight")
            if bl is not None and br is not None:
                bs = 0.5 * (float(bl) + float(br))
        return self.update_signals(0.5 * (right + left), t_ms, bs)

    def update_signals(self, ear: float, t_ms: float, blink_score: float | None = None) -> bool:
        """Same as :meth:`update` from precomputed signals (mean EAR, mean eyeBlink score)."""
        cfg = self.cfg
        dt = 0.0 if self._t_prev is None else min(max(t_ms - self._t_prev, 0.0), cfg.max_dt_ms)
        self._t_prev = t_ms
        if self._t_first is None:
            self._t_first = t_ms
        self.ear = ear

        if not self.warm:
            self._warm_ear.append(ear)
            if blink_score is not None:
                self._warm_bs.append(blink_score)
            if len(self._warm_ear) >= cfg.warmup_frames:
                self.ear_baseline.value = float(np.median(self._warm_ear))
                if self._warm_bs:
                    self.bs_baseline.value = float(np.median(self._warm_bs))
            return False

        base = self.ear_baseline.value or 1e-6
        c = (1.0 - ear / base) / (1.0 - cfg.full_closure_ratio)
        c = 0.0 if c < 0.0 else (1.0 if c > 1.0 else c)
        if blink_score is not None:
            if self.bs_baseline.value is None:
                self.bs_baseline.value = blink_score
            cb = (blink_score - self.bs_baseline.value) / cfg.blendshape_full_delta
            cb = 0.0 if cb < 0.0 else (1.0 if cb > 1.0 else cb)
            w = cfg.blendshape_weight
            c = (1.0 - w) * c + w * cb
        self.closure = c

        completed = self._step(c, t_ms)

        # Closed eyes say nothing about the open level: freeze the baselines then.
        if self.state is not EyeState.CLOSED and self.state is not EyeState.OPENING:
            self.ear_baseline.update(ear, dt)
            if blink_score is not None:
                self.bs_baseline.update(blink_score, dt)
        return completed

    def _step(self, c: float, t: float) -> bool:
        cfg = self.cfg
        s = self.state
        if s is EyeState.OPEN:
            if c >= cfg.closing_threshold:
                self._t_event = self._t_state = t
                self._long = False
                if c >= cfg.closed_threshold:
                    self._t_closed_first = t
                    self.state = EyeState.CLOSED
                else:
                    self.state = EyeState.CLOSING
            return False
        if s is EyeState.CLOSING:
            if c >= cfg.closed_threshold:
                self._t_closed_first = self._t_state = t
                self.state = EyeState.CLOSED
            elif c < cfg.closing_threshold or t - self._t_state > cfg.max_closing_ms:
                # Aborted: a squint, a downward glance or noise, not a blink.
                self.state = EyeState.OPEN
            return False
        if s is EyeState.CLOSED:
            if t - self._t_closed_first > cfg.max_closed_ms:
                self._long = True
            if c < cfg.closing_threshold:
                return self._finish(t)
            if c < cfg.closed_threshold:
                self._t_state = t
                self.state = EyeState.OPENING
            return False
        # OPENING
        if c >= cfg.closed_threshold:
            self.state = EyeState.CLOSED
            return False
        if c < cfg.closing_threshold or t - self._t_state > cfg.max_opening_ms:
            return self._finish(t)
        return False

    def _finish(self, t: float) -> bool:
        self.state = EyeState.OPEN
        if self._long:
            self.long_closures += 1
            return False
        if t - self._t_event < self.cfg.min_blink_ms:
            return False
        self.count += 1
        self.blink_times.append(self._t_event)
        self._recent.append(self._t_event)
        return True

    def rate_per_min(self, t_ms: float | None = None) -> float:
        """Blinks per minute over the sliding window ending at ``t_ms`` (default: last frame).

        The span is floored at ``rate_min_span_ms`` so one early blink does not read as
        60+ blinks per minute.
        """
        t_first, t_last = self._t_first, self._t_prev
        if t_first is None or t_last is None:
            return 0.0
        t = t_last if t_ms is None else t_ms
        lo = t - self.cfg.rate_window_ms
        times = self._recent
        while times and times[0] < lo:
            times.popleft()
        span = min(self.cfg.rate_window_ms, t - t_first)
        span = max(span, self.cfg.rate_min_span_ms)
        return len(times) * 60_000.0 / span
