"""Facial expression -> 8 emotion scores via FACS action-unit (AU) rules.

Why rules and not a classifier: MediaPipe already gives 52 ARKit-style blendshapes, which
are close to FACS action units, and EMFACS describes each basic emotion as a combination
of AUs. Rules are transparent, need no training data, and can be re-based on each user's
resting face (many people rest with lowered brows or a slight smile).

Pipeline per frame: blendshapes (or landmark geometry when absent) -> subtract per-user
neutral baseline -> pseudo AUs in [0, 1] -> rule evidence per emotion -> neutral from the
strongest evidence -> normalise to sum 1 -> EMA over time -> top emotion + confidence.
Getting the pseudo AUs from blendshapes or geometry is analysis.face.action_units'; this
module holds the emotion rules and the per-user estimator (baseline, smoothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.face.action_units import (
    CANONICAL_GEOMETRY,
    USED_BLENDSHAPES,
    ActionUnits,
    action_units_from_blendshapes,
    action_units_from_geometry,
    clip01,
    geometry_features,
)

EMOTIONS: tuple[str, ...] = (
    "happiness",
    "sadness",
    "anger",
    "surprise",
    "fear",
    "disgust",
    "neutral",
    "contempt",
)
EMOTION_KO: dict[str, str] = {
    "happiness": "기쁨",
    "sadness": "슬픔",
    "anger": "분노",
    "surprise": "놀람",
    "fear": "두려움",
    "disgust": "혐오",
    "neutral": "중립",
    "contempt": "경멸",
}
_NEUTRAL = EMOTIONS.index("neutral")


def emotion_evidence(au: ActionUnits, asym_full: float = 0.5) -> list[float]:
    """Rule evidence in [0, 1] per emotion (order of EMOTIONS; neutral from the others).

    Gates ``(1 - AUx)`` keep prototypes apart that share AUs: AU4 separates fear (brows
    raised *and* drawn together) from surprise; AU12 vetoes the negative emotions; AU1
    separates sadness/fear (inner brows up) from anger.
    """
    no_smile = 1.0 - au.au12
    ev = [0.0] * len(EMOTIONS)
    ev[0] = au.au12 * (0.7 + 0.3 * au.au6)
    ev[1] = (0.35 * au.au1 + 0.15 * au.au4 + 0.4 * au.au15 + 0.1 * au.au17) * no_smile
    ev[2] = (
        (0.45 * au.au4 + 0.2 * au.au7 + 0.15 * au.au5 + 0.2 * au.au24) * no_smile * (1.0 - au.au1)
    )
    ev[3] = (0.3 * au.au1 + 0.3 * au.au2 + 0.2 * au.au5 + 0.2 * au.au26) * (1.0 - au.au4)
    ev[4] = (0.3 * au.au1 + 0.2 * au.au4 + 0.25 * au.au5 + 0.25 * au.au20) * no_smile
    ev[5] = (0.5 * au.au9 + 0.3 * au.au10 + 0.2 * au.au15) * (1.0 - 0.7 * au.au12)
    ev[7] = clip01(au.asym / asym_full)
    m = max(ev)
    ev[_NEUTRAL] = (1.0 - m) * (1.0 - m)
    return ev


# --- stateful estimator -------------------------------------------------------------


@dataclass(slots=True)
class ExpressionConfig:
    """Defaults documented in docs/analysis.md."""

    baseline_cap: float = 0.35
    smoothing_tau_ms: float = 300.0
    geometry_confidence_factor: float = 0.5
    contempt_asym_full: float = 0.5
    max_dt_ms: float = 1000.0


@dataclass(frozen=True, slots=True)
class ExpressionResult:
    emotion: str
    scores: dict[str, float]
    confidence: float
    source: str  # "blendshapes" | "geometry"


class ExpressionEstimator:
    """Per-user baseline + EMA smoothing around the stateless rules above."""

    def __init__(self, config: ExpressionConfig | None = None) -> None:
        self.cfg = config or ExpressionConfig()
        self._bs_base = np.zeros(len(USED_BLENDSHAPES))
        self._bs_pairs = [
            (n, 0.0, 1.0) for n in USED_BLENDSHAPES
        ]  # (name, baseline, 1/(1-baseline))
        self._geo_base = CANONICAL_GEOMETRY.copy()
        self._cal_bs: list[np.ndarray] = []
        self._cal_geo: list[np.ndarray] = []
        self._ema: list[float] | None = None
        self._t_prev: float | None = None
        self.calibrated = False
        self.action_units = ActionUnits()

    def add_calibration_frame(
        self,
        blendshapes: dict[str, float] | None,
        landmarks: np.ndarray,
        rotation: np.ndarray | None = None,
        width: int = 640,
        height: int = 480,
    ) -> None:
        """Collect one resting-face frame (the tracker does this for the first seconds)."""
        if blendshapes:
            g = blendshapes.get
            self._cal_bs.append(
                np.fromiter((g(n, 0.0) for n in USED_BLENDSHAPES), float, len(USED_BLENDSHAPES))
            )
        self._cal_geo.append(geometry_features(landmarks, rotation, width, height))

    def finish_calibration(self) -> None:
        """Medians of the collected frames become the neutral baseline.

        Blendshape baselines are capped: a resting value above ``baseline_cap`` means the
        user was not neutral during calibration, and subtracting it would hide that
        expression for the whole session.
        """
        if self._cal_bs:
            self._bs_base = np.minimum(np.median(self._cal_bs, axis=0), self.cfg.baseline_cap)
            self._bs_pairs = [
                (n, b, 1.0 / (1.0 - b))
                for n, b in zip(USED_BLENDSHAPES, self._bs_base.tolist(), strict=True)
            ]
        if self._cal_geo:
            self._geo_base = np.median(self._cal_geo, axis=0)
        self._cal_bs.clear()
        self._cal_geo.clear()
        self.calibrated = True

    def _normalised_blendshapes(self, blendshapes: dict[str, float]) -> dict[str, float]:
        """clip((x - b) / (1 - b), 0, 1) per used name: 0 at rest, still 1 at the maximum.

        Plain Python on purpose: 27 scalars are cheaper than numpy's per-call overhead.
        """
        g = blendshapes.get
        out = {}
        for n, b, inv in self._bs_pairs:
            y = (float(g(n, 0.0)) - b) * inv
            out[n] = 0.0 if y <= 0.0 else (1.0 if y >= 1.0 else y)
        return out

    def update(
        self,
        blendshapes: dict[str, float] | None,
        landmarks: np.ndarray | None,
        t_ms: float,
        rotation: np.ndarray | None = None,
        width: int = 640,
        height: int = 480,
    ) -> ExpressionResult:
        """Scores for one frame. Blendshapes win when present; else landmark geometry."""
        if blendshapes:
            au = action_units_from_blendshapes(self._normalised_blendshapes(blendshapes))
            source = "blendshapes"
        elif landmarks is not None:
            d = geometry_features(landmarks, rotation, width, height) - self._geo_base
            au = action_units_from_geometry(d)
            source = "geometry"
        else:
            raise ValueError("need blendshapes or landmarks")
        self.action_units = au
        ev = emotion_evidence(au, self.cfg.contempt_asym_full)
        total = sum(ev)  # > 0: neutral = (1 - max)^2 is 0 only when max is 1
        ema = self._ema
        if ema is None or self._t_prev is None:
            ema = self._ema = [e / total for e in ev]
        else:
            dt = min(max(t_ms - self._t_prev, 0.0), self.cfg.max_dt_ms)
            a = 1.0 - math.exp(-dt / self.cfg.smoothing_tau_ms)
            for i, e in enumerate(ev):
                ema[i] += a * (e / total - ema[i])
        self._t_prev = t_ms

        s = ema
        top = max(range(len(s)), key=s.__getitem__)
        conf = s[top] * (self.cfg.geometry_confidence_factor if source == "geometry" else 1.0)
        return ExpressionResult(
            emotion=EMOTIONS[top],
            scores=dict(zip(EMOTIONS, s, strict=True)),  # copies: ema stays private
            confidence=conf,
            source=source,
        )
