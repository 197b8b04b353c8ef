"""Concentration score 0..100 over a sliding window.

concentration = 100 * (w_gaze * G + w_head * P + w_blink * B), where
G = fraction of window frames with gaze on screen,
P = 1 - ramp(mean head deviation from baseline; dead zone, span),
B = blink-rate factor: 1 inside the normal band for screen work, lower when the rate is
    very low (staring, drowsiness) and falling to 0 when it is very high (fatigue, stress).

Why a weighted sum and not a product: one weak signal (e.g. blink rate still unknown in
the first seconds) should lower the score, not zero it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class ConcentrationConfig:
    """Defaults documented in docs/analysis.md; weights sum to 1."""

    window_ms: float = 30_000.0
    gaze_weight: float = 0.5
    head_weight: float = 0.3
    blink_weight: float = 0.2
    head_deadzone_deg: float = 10.0
    head_span_deg: float = 20.0
    blink_low_per_min: float = 5.0
    blink_high_per_min: float = 20.0
    blink_zero_per_min: float = 40.0
    blink_factor_at_zero: float = 0.6
    blink_min_span_ms: float = 20_000.0


def blink_factor(rate_per_min: float, cfg: ConcentrationConfig | None = None) -> float:
    """Trapezoid: 1 on [low, high], linear to ``factor_at_zero`` at 0 and to 0 at ``zero``."""
    c = cfg or ConcentrationConfig()
    if rate_per_min < c.blink_low_per_min:
        frac = max(rate_per_min, 0.0) / c.blink_low_per_min
        return c.blink_factor_at_zero + (1.0 - c.blink_factor_at_zero) * frac
    if rate_per_min <= c.blink_high_per_min:
        return 1.0
    over = (rate_per_min - c.blink_high_per_min) / (c.blink_zero_per_min - c.blink_high_per_min)
    return max(0.0, 1.0 - over)


class ConcentrationEstimator:
    """Windowed score with O(1) running sums per frame."""

    def __init__(self, config: ConcentrationConfig | None = None) -> None:
        self.cfg = config or ConcentrationConfig()
        self._win: deque[tuple[float, bool, float]] = deque()
        self._on = 0
        self._dev = 0.0
        self._t_first: float | None = None
        self.score = 100.0

    def update(
        self, on_screen: bool, head_deviation_deg: float, blink_rate_per_min: float, t_ms: float
    ) -> float:
        cfg = self.cfg
        if self._t_first is None:
            self._t_first = t_ms
        self._win.append((t_ms, on_screen, head_deviation_deg))
        self._on += on_screen
        self._dev += head_deviation_deg
        lo = t_ms - cfg.window_ms
        win = self._win
        while win and win[0][0] < lo:
            _, o, d = win.popleft()
            self._on -= o
            self._dev -= d
        n = len(win)
        g = self._on / n
        mean_dev = max(self._dev / n, 0.0)
        r = (mean_dev - cfg.head_deadzone_deg) / cfg.head_span_deg
        p = 1.0 - (0.0 if r <= 0.0 else (1.0 if r >= 1.0 else r))
        # The blink rate is meaningless until enough time was observed: stay neutral.
        b = 1.0
        if t_ms - self._t_first >= cfg.blink_min_span_ms:
            b = blink_factor(blink_rate_per_min, cfg)
        self.score = 100.0 * (cfg.gaze_weight * g + cfg.head_weight * p + cfg.blink_weight * b)
        return self.score
