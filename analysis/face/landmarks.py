"""MediaPipe Face Landmarker (478-point mesh) index constants.

Naming follows the *subject's* side, as MediaPipe does: the "right eye" is the user's
right eye, which appears on the image's left (smaller x) in a non-mirrored camera frame.
Indices 0-467 are the face mesh, 468-477 the two iris rings (centre first).

Keeping every magic index here lets the other modules read like geometry, and lets tests
move exactly the points an algorithm looks at.
"""

from __future__ import annotations

N_LANDMARKS = 478
N_MESH = 468

# Eye corners.
RIGHT_EYE_OUTER = 33
RIGHT_EYE_INNER = 133
LEFT_EYE_INNER = 362
LEFT_EYE_OUTER = 263

# Lid mid points (top/bottom of the eye opening).
RIGHT_EYE_TOP = 159
RIGHT_EYE_BOTTOM = 145
LEFT_EYE_TOP = 386
LEFT_EYE_BOTTOM = 374

# Eye aspect ratio points, Soukupova & Cech order: p1 corner, p2 p3 upper lid,
# p4 other corner, p5 p6 lower lid (p2 above p6, p3 above p5).
RIGHT_EYE_EAR = (33, 160, 158, 133, 153, 144)
LEFT_EYE_EAR = (362, 385, 387, 263, 373, 380)

# Full lid contours, paired upper[i] above lower[i] (outer corner to inner corner).
RIGHT_EYE_UPPER_LID = (246, 161, 160, 159, 158, 157, 173)
RIGHT_EYE_LOWER_LID = (7, 163, 144, 145, 153, 154, 155)
LEFT_EYE_UPPER_LID = (466, 388, 387, 386, 385, 384, 398)
LEFT_EYE_LOWER_LID = (249, 390, 373, 374, 380, 381, 382)

# Iris: centre then four ring points.
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)

# Brows (upper contour, outer to inner).
RIGHT_BROW = (70, 63, 105, 66, 107)
LEFT_BROW = (300, 293, 334, 296, 336)
RIGHT_BROW_INNER = 107
LEFT_BROW_INNER = 336

# Nose, chin, forehead, face sides.
NOSE_TIP = 1
SUBNASALE = 2
RIGHT_NOSTRIL = 98
LEFT_NOSTRIL = 327
NOSE_BRIDGE = 168
CHIN = 152
FOREHEAD = 10
RIGHT_CHEEK = 234
LEFT_CHEEK = 454

# Mouth.
MOUTH_RIGHT = 61
MOUTH_LEFT = 291
UPPER_LIP_OUTER = 0
LOWER_LIP_OUTER = 17
UPPER_LIP_INNER = 13
LOWER_LIP_INNER = 14

# MediaPipe's canonical face model (canonical_face_model.obj, Apache-2.0), converted from cm
# to mm, for the points the analysers use. Frame: X towards the user's left (image right in
# a non-mirrored frame), Y up, Z out of the face towards the camera. Head pose fits it with
# PnP; the expression geometry fallback uses it as the population neutral face.
CANONICAL_FACE_MM: dict[int, tuple[float, float, float]] = {
    NOSE_TIP: (0.0, -11.269, 74.756),
    SUBNASALE: (0.0, -20.890, 60.583),
    RIGHT_NOSTRIL: (-14.056, -17.142, 52.411),
    LEFT_NOSTRIL: (14.056, -17.142, 52.411),
    CHIN: (0.0, -94.034, 42.645),
    RIGHT_EYE_OUTER: (-44.459, 26.640, 31.734),
    LEFT_EYE_OUTER: (44.459, 26.640, 31.734),
    RIGHT_EYE_INNER: (-18.564, 25.852, 37.579),
    LEFT_EYE_INNER: (18.564, 25.852, 37.579),
    MOUTH_RIGHT: (-24.562, -43.426, 42.839),
    MOUTH_LEFT: (24.562, -43.426, 42.839),
    FOREHEAD: (0.0, 82.618, 44.815),
    NOSE_BRIDGE: (0.0, 32.710, 52.360),
    RIGHT_CHEEK: (-76.642, 6.731, -24.359),
    LEFT_CHEEK: (76.642, 6.731, -24.359),
    UPPER_LIP_INNER: (0.0, -39.944, 52.195),
    LOWER_LIP_INNER: (0.0, -45.424, 54.048),
    RIGHT_EYE_TOP: (-31.772, 29.641, 38.770),
    RIGHT_EYE_BOTTOM: (-31.772, 22.943, 37.757),
    LEFT_EYE_TOP: (31.772, 29.641, 38.770),
    LEFT_EYE_BOTTOM: (31.772, 22.943, 37.757),
    70: (-57.210, 42.546, 28.309),
    300: (57.210, 42.546, 28.309),
    105: (-39.866, 51.095, 44.663),
    334: (39.866, 51.095, 44.663),
    RIGHT_BROW_INNER: (-13.956, 50.120, 53.160),
    LEFT_BROW_INNER: (13.956, 50.120, 53.160),
}
