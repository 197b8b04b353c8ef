"""What one FaceTracker result becomes: the `analysis.face` event a client sees, the
sample the face timeline stores (exactly SAMPLE_KEYS, which reports read back) and the plain
word for attention the persona reads. Apart from the pipeline because these are the
contracts with the client, the report and the prompt, not the frame scheduling."""

from __future__ import annotations

from typing import Any, Literal

from analysis.face import FaceFrameResult

Source = Literal["landmarks", "camera"]

SAMPLE_KEYS = (
    "emotion",
    "emotion_scores",
    "blink_rate_per_min",
    "gaze_on_screen",
    "gaze_stability",
    "head_pose",
    "posture_score",
    "concentration",
)


def face_event(r: FaceFrameResult, t_ms: float, source: Source, dropped: int) -> dict[str, Any]:
    """The `analysis.face` event for one tracker result."""
    return {
        "type": "analysis.face",
        "t_ms": round(t_ms),
        "face": True,
        "source": source,
        "emotion": r.emotion,
        "emotion_scores": {k: round(v, 3) for k, v in r.emotion_scores.items()},
        "confidence": round(r.emotion_confidence, 3),
        "blink_rate_per_min": round(r.blink_rate_per_min, 1),
        "blink_count": r.blink_count,
        "gaze_on_screen": bool(r.gaze_on_screen),
        "gaze_stability": round(r.gaze_stability, 3),
        "head_pose": {k: round(v, 1) for k, v in r.head_pose.as_dict().items()},
        "posture_score": round(r.posture_score, 1),
        "concentration": round(r.concentration, 1),
        "calibrated": r.calibrated,
        "dropped": dropped,
    }


def sample_data(r: FaceFrameResult) -> dict[str, Any]:
    """Exactly SAMPLE_KEYS: the report reads these from the stored face timeline."""
    return {
        "emotion": r.emotion,
        "emotion_scores": {k: round(v, 4) for k, v in r.emotion_scores.items()},
        "blink_rate_per_min": round(r.blink_rate_per_min, 2),
        "gaze_on_screen": bool(r.gaze_on_screen),
        "gaze_stability": round(r.gaze_stability, 4),
        "head_pose": {k: round(v, 2) for k, v in r.head_pose.as_dict().items()},
        "posture_score": round(r.posture_score, 2),
        "concentration": round(r.concentration, 2),
    }


def attention_of(r: FaceFrameResult) -> str:
    """A word for the prompt: the persona reacts to it, so keep it plain."""
    if not r.gaze_on_screen:
        return "looking away"
    return "focused" if r.concentration >= 60 else "distracted"
