"""Head pose: known poses rendered with cv2.projectPoints from MediaPipe's canonical mesh
(parsed from the .task file, independently of the subset hard-coded in headpose.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analysis.face import landmarks as L
from analysis.face.headpose import (
    HeadPoseEstimator,
    euler_from_rotation,
    rotation_from_euler,
)
from tests.analysis import face_synth as fs

GRID = list(itertools.product(range(-40, 41, 20), range(-30, 31, 15), range(-20, 21, 10)))


def test_hardcoded_model_matches_the_task_file() -> None:
    mesh = fs.canonical_mesh_mm()
    for idx, xyz in L.CANONICAL_FACE_MM.items():
        np.testing.assert_allclose(mesh[idx], xyz, atol=0.01)


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(0, 0, 0), (35, -20, 10), (-25, 28, -18)])
def test_euler_roundtrip(yaw: float, pitch: float, roll: float) -> None:
    p = euler_from_rotation(rotation_from_euler(yaw, pitch, roll))
    assert (p.yaw, p.pitch, p.roll) == pytest.approx((yaw, pitch, roll), abs=1e-9)


@pytest.mark.parametrize(
    "t_mm", [(0.0, 0.0, 550.0), (120.0, -60.0, 700.0)], ids=["centred", "off-centre"]
)
def test_recovers_known_pose_within_2_degrees(t_mm: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(0)
    est = HeadPoseEstimator(fs.W, fs.H)
    worst = 0.0
    for yaw, pitch, roll in GRID:
        lm = fs.render_pose(yaw, pitch, roll, t_mm=t_mm, noise_px=0.5, rng=rng)
        p = est.estimate(lm)
        worst = max(worst, abs(p.yaw - yaw), abs(p.pitch - pitch), abs(p.roll - roll))
    assert worst < 2.0
    assert est.translation_mm is not None
    np.testing.assert_allclose(est.translation_mm, t_mm, rtol=0.05, atol=10.0)


def test_other_image_sizes() -> None:
    est = HeadPoseEstimator(1280, 720)
    lm = fs.render_pose(15, -10, 5, width=1280, height=720)
    p = est.estimate(lm)
    assert (p.yaw, p.pitch, p.roll) == pytest.approx((15, -10, 5), abs=0.5)


def test_sign_convention_matches_the_image() -> None:
    """yaw+ = user turns to their left (nose to image right), pitch+ = chin up (nose up),
    roll+ = head tilts to the user's right shoulder (their left eye rises in the image)."""
    est = HeadPoseEstimator(fs.W, fs.H)
    front = fs.render_pose(0, 0, 0)

    turned = fs.render_pose(25, 0, 0)
    assert turned[L.NOSE_TIP, 0] > front[L.NOSE_TIP, 0]
    assert est.estimate(turned).yaw > 20

    up = fs.render_pose(0, 20, 0)
    assert up[L.NOSE_TIP, 1] < front[L.NOSE_TIP, 1]
    assert est.estimate(up).pitch > 15

    tilted = fs.render_pose(0, 0, 15)
    assert tilted[L.LEFT_EYE_OUTER, 1] < tilted[L.RIGHT_EYE_OUTER, 1]
    assert est.estimate(tilted).roll > 10


def test_real_face_agrees_with_mediapipe_transform() -> None:
    """On the astronaut photo, and the same photo rotated by 90 degrees, our PnP pose agrees
    with MediaPipe's own facial transformation matrix (its different model and camera
    explain a few degrees; the rotation checks large roll and its sign)."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from skimage import data

    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(fs.face_model_path())),
        running_mode=vision.RunningMode.IMAGE,
        output_facial_transformation_matrixes=True,
        num_faces=1,
    )
    img = data.astronaut()
    with vision.FaceLandmarker.create_from_options(opts) as det:
        for im in (img, np.rot90(img)):
            im = np.ascontiguousarray(im)
            res = det.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=im))
            ref = euler_from_rotation(np.asarray(res.facial_transformation_matrixes[0])[:3, :3])
            lm = np.array([(p.x, p.y, p.z) for p in res.face_landmarks[0]])
            ours = HeadPoseEstimator(im.shape[1], im.shape[0]).estimate(lm)
            assert abs(ours.yaw - ref.yaw) < 8
            assert abs(ours.pitch - ref.pitch) < 8
            assert abs(ours.roll - ref.roll) < 5
    # rot90 turns the image counter-clockwise: a large positive roll.
    assert ours.roll > 75


def test_degenerate_input_keeps_last_pose() -> None:
    est = HeadPoseEstimator(fs.W, fs.H)
    first = est.estimate(fs.render_pose(10, 5, 0))
    collapsed = np.full((L.N_LANDMARKS, 3), 0.5)
    assert est.estimate(collapsed) == first


def test_rejects_bad_image_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        HeadPoseEstimator(0, 480)
