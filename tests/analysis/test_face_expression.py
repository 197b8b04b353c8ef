"""Expression: FACS rules on real MediaPipe output, prototypes, baseline and smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.face import FaceTracker
from analysis.face.action_units import (
    BLENDSHAPE_NAMES,
    CANONICAL_GEOMETRY,
    action_units_from_blendshapes,
    geometry_features,
)
from analysis.face.expression import EMOTION_KO, EMOTIONS, ExpressionEstimator, emotion_evidence
from analysis.face.headpose import HeadPoseEstimator
from tests.analysis import face_synth as fs

RESTING = {  # a typical resting face: slightly lowered brows, tiny smile, some squint
    "browDownLeft": 0.3,
    "browDownRight": 0.28,
    "mouthSmileLeft": 0.12,
    "mouthSmileRight": 0.1,
    "eyeSquintLeft": 0.2,
    "eyeSquintRight": 0.22,
    "mouthPressLeft": 0.15,
    "mouthPressRight": 0.15,
}

# EMFACS prototypes expressed as blendshapes (AU -> blendshape per docs/analysis.md).
PROTOTYPES = {
    "happiness": {
        "mouthSmileLeft": 0.8,
        "mouthSmileRight": 0.8,
        "eyeSquintLeft": 0.5,
        "eyeSquintRight": 0.5,
    },
    "surprise": {
        "browInnerUp": 0.8,
        "browOuterUpLeft": 0.8,
        "browOuterUpRight": 0.8,
        "eyeWideLeft": 0.7,
        "eyeWideRight": 0.7,
        "jawOpen": 0.7,
    },
    "fear": {
        "browInnerUp": 0.7,
        "browDownLeft": 0.5,
        "browDownRight": 0.5,
        "eyeWideLeft": 0.7,
        "eyeWideRight": 0.7,
        "mouthStretchLeft": 0.7,
        "mouthStretchRight": 0.7,
    },
    "sadness": {
        "browInnerUp": 0.7,
        "browDownLeft": 0.3,
        "browDownRight": 0.3,
        "mouthFrownLeft": 0.7,
        "mouthFrownRight": 0.7,
        "mouthShrugLower": 0.5,
    },
    "anger": {
        "browDownLeft": 0.8,
        "browDownRight": 0.8,
        "eyeSquintLeft": 0.6,
        "eyeSquintRight": 0.6,
        "mouthPressLeft": 0.6,
        "mouthPressRight": 0.6,
    },
    "disgust": {
        "noseSneerLeft": 0.7,
        "noseSneerRight": 0.7,
        "mouthUpperUpLeft": 0.6,
        "mouthUpperUpRight": 0.6,
        "mouthFrownLeft": 0.3,
        "mouthFrownRight": 0.3,
    },
    "contempt": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.05, "mouthDimpleLeft": 0.4},
    "neutral": {"browDownLeft": 0.05, "mouthSmileLeft": 0.05, "jawOpen": 0.03},
}


def _full(bs: dict[str, float]) -> dict[str, float]:
    """All 52 names like MediaPipe sends them, zeros where unspecified."""
    return {n: bs.get(n, 0.0) for n in BLENDSHAPE_NAMES}


def test_labels_and_korean_map() -> None:
    assert set(EMOTIONS) == {
        "happiness",
        "sadness",
        "anger",
        "surprise",
        "fear",
        "disgust",
        "neutral",
        "contempt",
    }
    assert EMOTION_KO == {
        "happiness": "기쁨",
        "sadness": "슬픔",
        "anger": "분노",
        "surprise": "놀람",
        "fear": "두려움",
        "disgust": "혐오",
        "neutral": "중립",
        "contempt": "경멸",
    }


def test_blendshape_names_match_the_model() -> None:
    assert tuple(fs.astronaut_face().blendshapes) == BLENDSHAPE_NAMES


def test_astronaut_is_happy_from_blendshapes() -> None:
    face = fs.astronaut_face()
    assert face.landmarks.shape == (478, 3)
    r = ExpressionEstimator().update(face.blendshapes, face.landmarks, 0.0)
    assert r.source == "blendshapes"
    assert r.emotion == "happiness"
    assert r.confidence > 0.5
    assert sum(r.scores.values()) == pytest.approx(1.0)
    assert set(r.scores) == set(EMOTIONS)


def test_astronaut_is_happy_from_geometry_alone() -> None:
    """Without blendshapes: frontalised mouth corners lift ~0.075 eye-corner distances and
    the mouth is ~0.155 wider than the canonical (population neutral) face -> AU12 saturates.
    Confidence is halved to say this path is cruder."""
    face = fs.astronaut_face()
    tracker = FaceTracker(face.width, face.height)
    r = tracker.update(face.landmarks, None, 0.0)
    assert r.emotion_source == "geometry"
    assert r.emotion == "happiness"
    assert r.emotion_scores["happiness"] > 0.5
    assert r.emotion_confidence == pytest.approx(0.5 * r.emotion_scores["happiness"])


@pytest.mark.parametrize("emotion", list(PROTOTYPES))
def test_facs_prototypes_win(emotion: str) -> None:
    r = ExpressionEstimator().update(_full(PROTOTYPES[emotion]), None, 0.0)
    assert r.emotion == emotion
    assert r.scores[emotion] == max(r.scores.values())


def test_cheek_squint_or_eye_squint_serve_as_au6() -> None:
    a = action_units_from_blendshapes({"cheekSquintLeft": 0.6, "cheekSquintRight": 0.6})
    b = action_units_from_blendshapes({"eyeSquintLeft": 0.6, "eyeSquintRight": 0.6})
    assert a.au6 == b.au6 == pytest.approx(0.6)
    smile = {"mouthSmileLeft": 0.6, "mouthSmileRight": 0.6}
    plain = emotion_evidence(action_units_from_blendshapes(smile))[0]
    duchenne = emotion_evidence(
        action_units_from_blendshapes({**smile, "eyeSquintLeft": 0.6, "eyeSquintRight": 0.6})
    )[0]
    assert duchenne > plain


def test_baseline_turns_a_resting_face_neutral_and_a_smile_happy() -> None:
    rng = np.random.default_rng(0)
    est = ExpressionEstimator()
    before = est.update(_full(RESTING), None, 0.0)
    # Uncalibrated, lowered resting brows + pressed lips read as (weak) anger.
    assert before.scores["anger"] > 0.1

    lm = fs.neutral_frame()
    t = 0.0
    for _ in range(150):  # 5 s at 30 fps
        noisy = {k: float(np.clip(v + rng.normal(0, 0.02), 0, 1)) for k, v in RESTING.items()}
        est.add_calibration_frame(_full(noisy), lm)
        t += 33.3
    est.finish_calibration()
    rest = None
    for _ in range(30):
        t += 33.3
        rest = est.update(_full(RESTING), None, t)
    assert rest is not None and rest.emotion == "neutral"
    happy_at_rest = rest.scores["happiness"]

    smile = {
        **RESTING,
        "mouthSmileLeft": 0.6,
        "mouthSmileRight": 0.6,
        "eyeSquintLeft": 0.45,
        "eyeSquintRight": 0.45,
    }
    r = rest
    for _ in range(30):
        t += 33.3
        r = est.update(_full(smile), None, t)
    assert r.emotion == "happiness"
    assert r.scores["happiness"] > happy_at_rest + 0.3


def test_baseline_is_capped_so_a_calibration_smile_stays_visible() -> None:
    """A user grinning through calibration: the resting smile is capped at 0.35, so the
    same grin still reads as happiness afterwards."""
    face = fs.astronaut_face()
    est = ExpressionEstimator()
    for _ in range(20):
        est.add_calibration_frame(face.blendshapes, face.landmarks)
    est.finish_calibration()
    assert est.update(face.blendshapes, None, 0.0).emotion == "happiness"


def test_geometry_baseline_is_relative() -> None:
    """Geometry baselines are not capped: after calibrating on a face, that same face is
    neutral, and a wider mouth than that is a smile."""
    lm = fs.neutral_frame()
    hp = HeadPoseEstimator()
    hp.estimate(lm)
    est = ExpressionEstimator()
    for _ in range(10):
        est.add_calibration_frame(None, lm, hp.rotation)
    est.finish_calibration()
    assert est.update(None, lm, 0.0, hp.rotation).emotion == "neutral"
    wider = lm.copy()
    for idx, sign in ((61, -1), (291, 1)):
        wider[idx, 0] += sign * 0.012  # corners ~8 px further out and ~8 px up
        wider[idx, 1] -= 0.016
    r = None
    for k in range(10):
        r = est.update(None, wider, 33.3 * (k + 1), hp.rotation)
    assert r is not None and r.emotion == "happiness"


@pytest.mark.parametrize(
    ("yaw", "pitch", "roll"), [(0, 0, 0), (30, 0, 0), (0, 20, 0), (-30, -15, 10)]
)
def test_geometry_is_pose_invariant(yaw: float, pitch: float, roll: float) -> None:
    """The canonical face, turned and off-centre, still has the canonical features:
    perspective and head rotation are undone, so a turn never reads as an expression."""
    lm = fs.render_pose(yaw, pitch, roll, t_mm=(100.0, -80.0, 600.0))
    hp = HeadPoseEstimator()
    hp.estimate(lm)
    np.testing.assert_allclose(geometry_features(lm, hp.rotation), CANONICAL_GEOMETRY, atol=0.01)
    assert ExpressionEstimator().update(None, lm, 0.0, hp.rotation).emotion == "neutral"


def test_one_frame_spike_is_smoothed_away() -> None:
    est = ExpressionEstimator()
    neutral = _full(PROTOTYPES["neutral"])
    surprise = _full(PROTOTYPES["surprise"])
    t = 0.0
    for _ in range(30):
        t += 33.3
        est.update(neutral, None, t)
    t += 33.3
    assert est.update(surprise, None, t).emotion == "neutral"
    for _ in range(15):  # 0.5 s of surprise
        t += 33.3
        r = est.update(surprise, None, t)
    assert r.emotion == "surprise"


def test_needs_some_input() -> None:
    with pytest.raises(ValueError, match="blendshapes or landmarks"):
        ExpressionEstimator().update(None, None, 0.0)
