"""Face measurements -> pseudo FACS action units (AUs) in [0, 1].

Two sources: MediaPipe's 52 ARKit-style blendshapes (close to AUs; the estimator subtracts
the user's resting baseline first), or, when a client sends no blendshapes, landmark
geometry measured against a neutral face. What the AUs mean (the emotion rules, baseline
and smoothing) is analysis.face.expression's; this module does not import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.face import landmarks as L

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
USED_BLENDSHAPES = (
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


def clip01(x: float) -> float:
    """Into [0, 1]: every AU and every rule's evidence is a 0..1 strength."""
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
    au12 = clip01(0.6 * lift / 0.08 + 0.4 * d_w / 0.12)
    squint = clip01(-d_eye / 0.04)
    return ActionUnits(
        au1=clip01(d_bi / 0.08),
        au2=clip01(d_bo / 0.08),
        au4=clip01(max(-0.5 * (d_bi + d_bo) / 0.05, -d_gap / 0.06)),
        au5=clip01(d_eye / 0.04),
        au6=squint,
        au7=squint,
        au12=au12,
        au15=clip01(-lift / 0.05),
        au20=clip01(d_w / 0.12) * clip01(1.0 - lift / 0.03),
        au26=clip01(d_open / 0.3),
        asym=clip01((abs(d_lr - d_ll) - 0.01) / 0.1),
    )
