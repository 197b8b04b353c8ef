"""Face perception: landmarks (MediaPipe 478 points) + blendshapes in, dataclasses out.

Pure computation (numpy, cv2.solvePnP); no I/O and no imports from ``server``. Entry point
for a live session is :class:`FaceTracker`; the analysers are usable on their own.
"""

from analysis.face.action_units import (
    BLENDSHAPE_NAMES,
    ActionUnits,
    action_units_from_blendshapes,
    action_units_from_geometry,
    geometry_features,
)
from analysis.face.blink import BlinkConfig, BlinkDetector, EyeState, eye_aspect_ratios
from analysis.face.concentration import (
    ConcentrationConfig,
    ConcentrationEstimator,
    blink_factor,
)
from analysis.face.expression import (
    EMOTION_KO,
    EMOTIONS,
    ExpressionConfig,
    ExpressionEstimator,
    ExpressionResult,
    emotion_evidence,
)
from analysis.face.gaze import GazeConfig, GazeEstimator, gaze_ratios
from analysis.face.headpose import (
    HeadPose,
    HeadPoseEstimator,
    camera_matrix,
    euler_from_rotation,
    model_to_camera_rotation,
    rotation_from_euler,
)
from analysis.face.posture import PostureConfig, PostureEstimator, face_size_px
from analysis.face.tracker import FaceFrameResult, FaceSummary, FaceTracker, TrackerConfig

__all__ = [
    "BLENDSHAPE_NAMES",
    "EMOTIONS",
    "EMOTION_KO",
    "ActionUnits",
    "BlinkConfig",
    "BlinkDetector",
    "ConcentrationConfig",
    "ConcentrationEstimator",
    "ExpressionConfig",
    "ExpressionEstimator",
    "ExpressionResult",
    "EyeState",
    "FaceFrameResult",
    "FaceSummary",
    "FaceTracker",
    "GazeConfig",
    "GazeEstimator",
    "HeadPose",
    "HeadPoseEstimator",
    "PostureConfig",
    "PostureEstimator",
    "TrackerConfig",
    "action_units_from_blendshapes",
    "action_units_from_geometry",
    "blink_factor",
    "camera_matrix",
    "emotion_evidence",
    "euler_from_rotation",
    "eye_aspect_ratios",
    "face_size_px",
    "gaze_ratios",
    "geometry_features",
    "model_to_camera_rotation",
    "rotation_from_euler",
]
