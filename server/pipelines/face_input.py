"""Face input checks: client landmarks and blendshapes made safe for FaceTracker.

Clients send arbitrary JSON; these turn it into a finite (478, 3) mesh and bounded scores,
or raise InvalidFaceInput with a message the client may see.
"""

from __future__ import annotations

import math

import numpy as np

from analysis.face import landmarks as L

# Bound for client landmark values (MediaPipe's are about 0..1) and blendshape scores (0..1):
# generous, yet far from where squares and exponentials overflow to inf and NaN.
MAX_COORD = 1000.0


class InvalidFaceInput(ValueError):
    """A face frame the tracker cannot take; the message is safe to show the client."""

    def __init__(self, message: str, code: str = "invalid_event") -> None:
        super().__init__(message)
        self.code = code


def landmarks_array(points: list[list[float]] | np.ndarray) -> np.ndarray:
    """Client landmarks (468 or 478 points of [x, y] or [x, y, z]) -> finite (478, 3).

    468-point meshes (no iris) get iris rings synthesised at the eye centres: gaze then
    follows head pose only, which is the best that input allows."""
    try:
        a = np.asarray(points, dtype=np.float64)
    except ValueError:  # ragged: some points have z, some not
        a = np.array([(p[0], p[1], p[2] if len(p) > 2 else 0.0) for p in points])
    if a.ndim != 2 or a.shape[0] not in (L.N_MESH, L.N_LANDMARKS) or a.shape[1] not in (2, 3):
        raise InvalidFaceInput(
            f"landmarks must be 468 or 478 points of [x, y] or [x, y, z], got shape {a.shape}"
        )
    if not np.isfinite(a).all():
        raise InvalidFaceInput("landmarks contain NaN or infinity.")
    if np.abs(a).max() > MAX_COORD:  # 1e308 is finite, but its squares are not
        raise InvalidFaceInput(
            f"landmarks are normalised coordinates; values beyond +-{MAX_COORD:g} are rejected."
        )
    if a.shape[1] == 2:
        a = np.hstack((a, np.zeros((a.shape[0], 1))))
    if a.shape[0] == L.N_MESH:
        a = np.vstack((a, _iris_from_mesh(a)))
    return a


def _iris_from_mesh(mesh: np.ndarray) -> np.ndarray:
    rings = []
    for upper, lower, a, b in (
        (L.RIGHT_EYE_UPPER_LID, L.RIGHT_EYE_LOWER_LID, L.RIGHT_EYE_OUTER, L.RIGHT_EYE_INNER),
        (L.LEFT_EYE_UPPER_LID, L.LEFT_EYE_LOWER_LID, L.LEFT_EYE_INNER, L.LEFT_EYE_OUTER),
    ):
        centre = mesh[list(upper + lower)].mean(axis=0)
        r = 0.2 * float(np.linalg.norm(mesh[a, :2] - mesh[b, :2]))
        offsets = np.array([[0, 0, 0], [r, 0, 0], [0, -r, 0], [-r, 0, 0], [0, r, 0]])
        rings.append(centre + offsets)
    return np.vstack(rings)


def check_blendshapes(bs: dict[str, float] | None) -> dict[str, float] | None:
    """Blendshape scores must be finite numbers (MediaPipe gives 0..1)."""
    if not bs:
        return None
    for name, v in bs.items():
        if not math.isfinite(v):
            raise InvalidFaceInput(f"blendshape {name[:64]!r} is NaN or infinite.")
        if not -MAX_COORD <= v <= MAX_COORD:
            raise InvalidFaceInput(f"blendshape {name[:64]!r} is out of range (scores are 0..1).")
    return bs
