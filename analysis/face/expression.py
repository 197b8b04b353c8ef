"""Facial expression -> 8 emotion scores via FACS action-unit (AU) rules.

Why rules and not a classifier: MediaPipe already gives 52 ARKit-style blendshapes, which
are close to FACS action units, and EMFACS describes each basic emotion as a combination
of AUs. Rules are transparent, need no training data, and can be re-based on each user's
resting face (many people rest with lowered brows or a slight smile).

Pipeline per frame: blendshapes (or landmark geometry when absent) -> subtract per-user
neutral baseline -> pseudo AUs in [0, 1] -> rule evidence per emotion -> neutral from the
strongest evidence -> normalise to sum 1 -> EMA over time -> top emotion + confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.face import landmarks as L

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

# The 52 blendshape categories MediaPipe's face_blendshapes model emits, in its order.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
)

# Only these feed the AU rules; the baseline is kept for them alone.
_USED = (
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "browDownLeft",
    "browDownRight",
    "eyeWideLeft",
    "eyeWideRight",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "noseSneerLeft",
    "noseSneerRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthShrugLower",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthPressLeft",
    "mouthPressRight",
    "jawOpen",
)


def _clip01(x: float) -> float:
    return 0.0 if x <= 0.0 else (1.0 if x >= 1.0 else x)


@dataclass(slots=True)
class ActionUnits:
    """Pseudo FACS action units in [0, 1]; ``asym`` = unilateral smile/dimple strength."""

    au1: float = 0.0  # inner brow raiser
    au2: float = 0.0  # outer brow raiser
    au4: float = 0.0  # brow lowerer
    au5: float = 0.0  # upper lid raiser
    au6: float = 0.0  # cheek raiser
    au7: float = 0.0  # lid tightener
    au9: float = 0.0  # nose wrinkler
    au10: float = 0.0  # upper lip raiser
    au12: float = 0.0  # lip corner puller
    au14: float = 0.0  # dimpler
    au15: float = 0.0  # lip corner depressor
    au17: float = 0.0  # chin raiser
    au20: float = 0.0  # lip stretcher
    au24: float = 0.0  # lip pressor
    au26: float = 0.0  # jaw drop
    asym: float = 0.0  # |left - right| of AU12 / AU14


def action_units_from_blendshapes(v: dict[str, float]) -> ActionUnits:
    """Map (baseline-corrected) blendshape scores to AUs.

    MediaPipe's cheekSquint stays near 0 on real smiles, so AU6 also takes eyeSquint (the
    closest visible cue, AU6 narrows the eye from below).
    """
    g = v.get
    sq = 0.5 * (g("eyeSquintLeft", 0.0) + g("eyeSquintRight", 0.0))
    cheek = 0.5 * (g("cheekSquintLeft", 0.0) + g("cheekSquintRight", 0.0))
    sl, sr = g("mouthSmileLeft", 0.0), g("mouthSmileRight", 0.0)
    dl, dr = g("mouthDimpleLeft", 0.0), g("mouthDimpleRight", 0.0)
    return ActionUnits(
        au1=g("browInnerUp", 0.0),
        au2=0.5 * (g("browOuterUpLeft", 0.0) + g("browOuterUpRight", 0.0)),
        au4=0.5 * (g("browDownLeft", 0.0) + g("browDownRight", 0.0)),
        au5=0.5 * (g("eyeWideLeft", 0.0) + g("eyeWideRight", 0.0)),
        au6=max(cheek, sq),
        au7=sq,
        au9=0.5 * (g("noseSneerLeft", 0.0) + g("noseSneerRight", 0.0)),
        au10=0.5 * (g("mouthUpperUpLeft", 0.0) + g("mouthUpperUpRight", 0.0)),
        au12=0.5 * (sl + sr),
        au14=0.5 * (dl + dr),
        au15=0.5 * (g("mouthFrownLeft", 0.0) + g("mouthFrownRight", 0.0)),
        au17=g("mouthShrugLower", 0.0),
        au20=0.5 * (g("mouthStretchLeft", 0.0) + g("mouthStretchRight", 0.0)),
        au24=0.5 * (g("mouthPressLeft", 0.0) + g("mouthPressRight", 0.0)),
        au26=g("jawOpen", 0.0),
        asym=max(abs(sl - sr), abs(dl - dr)),
    )


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
    ev[7] = _clip01(au.asym / asym_full)
    m = max(ev)
    ev[_NEUTRAL] = (1.0 - m) * (1.0 - m)
    return ev


# --- geometry fallback ---------------------------------------------------------------

_GEO_IDX = np.array(
    [
        L.RIGHT_EYE_OUTER,  # 0
        L.LEFT_EYE_OUTER,  # 1
        L.MOUTH_RIGHT,  # 2
        L.MOUTH_LEFT,  # 3
        L.UPPER_LIP_INNER,  # 4
        L.LOWER_LIP_INNER,  # 5
        L.RIGHT_BROW_INNER,  # 6
        L.LEFT_BROW_INNER,  # 7
        105,  # 8 right brow middle
        334,  # 9 left brow middle
        L.RIGHT_EYE_TOP,  # 10
        L.LEFT_EYE_TOP,  # 11
        L.RIGHT_EYE_BOTTOM,  # 12
        L.LEFT_EYE_BOTTOM,  # 13
    ],
    dtype=np.intp,
)
GEOMETRY_FEATURES = (
    "lift_right",
    "lift_left",
    "mouth_width",
    "mouth_open",
    "brow_inner",
    "brow_outer",
    "brow_gap",
    "eye_open",
)


def _features(q: np.ndarray) -> np.ndarray:
    """Features of frontal face-frame points (Y up), in units of outer eye-corner distance."""
    e = math.hypot(q[1, 0] - q[0, 0], q[1, 1] - q[0, 1]) or 1e-9
    lip_y = 0.5 * (q[4, 1] + q[5, 1])
    eye_top = 0.5 * (q[10, 1] + q[11, 1])
    return np.array(
        [
            (q[2, 1] - lip_y) / e,
            (q[3, 1] - lip_y) / e,
            math.hypot(q[3, 0] - q[2, 0], q[3, 1] - q[2, 1]) / e,
            math.hypot(q[5, 0] - q[4, 0], q[5, 1] - q[4, 1]) / e,
            (0.5 * (q[6, 1] + q[7, 1]) - eye_top) / e,
            (0.5 * (q[8, 1] + q[9, 1]) - eye_top) / e,
            math.hypot(q[7, 0] - q[6, 0], q[7, 1] - q[6, 1]) / e,
            0.5 * ((q[10, 1] - q[12, 1]) + (q[11, 1] - q[13, 1])) / e,
        ]
    )


def geometry_features(
    landmarks: np.ndarray,
    rotation: np.ndarray | None = None,
    width: int = 640,
    height: int = 480,
) -> np.ndarray:
    """Pose-normalised mouth/brow/eye features (see GEOMETRY_FEATURES).

    Two corrections keep a head turn from reading as an expression:
    perspective (each point's offset from the image centre times ``1 + z``: MediaPipe z is
    depth relative to the face in units of the image width, which is our focal length, so
    this recovers a scaled true 3D shape), then ``rotation`` (the head rotation H in space
    from the head-pose estimator) is undone to get a frontal face.
    """
    p = landmarks[_GEO_IDX]
    k = 1.0 + p[:, 2:3]
    q = np.empty((len(_GEO_IDX), 3))
    q[:, 0:1] = (p[:, 0:1] - 0.5) * k * width
    q[:, 1:2] = (0.5 - p[:, 1:2]) * k * height
    q[:, 2] = -p[:, 2] * width
    if rotation is not None:
        q = q @ rotation
    return _features(q)


# Population neutral: MediaPipe's canonical face, seen frontally.
CANONICAL_GEOMETRY = _features(np.array([L.CANONICAL_FACE_MM[int(i)] for i in _GEO_IDX]))


def action_units_from_geometry(d: np.ndarray) -> ActionUnits:
    """Pseudo AUs from feature deltas against the neutral face (same order as features).

    Scales: the delta at which an AU saturates, in eye-corner-distance units, e.g. a broad
    smile lifts the mouth corners ~0.08 and widens the mouth ~0.12 (astronaut image vs
    canonical face: +0.075 and +0.155).
    """
    d_lr, d_ll, d_w, d_open, d_bi, d_bo, d_gap, d_eye = (float(x) for x in d)
    lift = 0.5 * (d_lr + d_ll)
    au12 = _clip01(0.6 * lift / 0.08 + 0.4 * d_w / 0.12)
    squint = _clip01(-d_eye / 0.04)
    return ActionUnits(
        au1=_clip01(d_bi / 0.08),
        au2=_clip01(d_bo / 0.08),
        au4=_clip01(max(-0.5 * (d_bi + d_bo) / 0.05, -d_gap / 0.06)),
        au5=_clip01(d_eye / 0.04),
        au6=squint,
        au7=squint,
        au12=au12,
        au15=_clip01(-lift / 0.05),
        au20=_clip01(d_w / 0.12) * _clip01(1.0 - lift / 0.03),
        au26=_clip01(d_open / 0.3),
        asym=_clip01((abs(d_lr - d_ll) - 0.01) / 0.1),
    )


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
        self._bs_base = np.zeros(len(_USED))
        self._bs_pairs = [(n, 0.0, 1.0) for n in _USED]  # (name, baseline, 1/(1-baseline))
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
            self._cal_bs.append(np.fromiter((g(n, 0.0) for n in _USED), float, len(_USED)))
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
                (n, b, 1.0 / (1.0 - b)) for n, b in zip(_USED, self._bs_base.tolist(), strict=True)
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
