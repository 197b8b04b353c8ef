"""Per-session face analysis: one :class:`FaceTracker` per user session, fed every frame.

Why one stateful object: every analyser needs history (blink baseline, gaze window,
posture smoothing, expression baseline), and they share a calibration phase (the first
seconds, with a resting face) and the head pose. Where the screen is comes from the most
frontal of those frames and is followed slowly afterwards (analysis/face/baseline.py), so
a user who looks away through the first seconds still has the screen where it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from analysis.face import landmarks as L
from analysis.face.baseline import PITCH, ROLL, SIZE, YAW, BaselineConfig, H, ScreenBaseline, V
from analysis.face.blink import BlinkConfig, BlinkDetector, EyeState
from analysis.face.concentration import ConcentrationConfig, ConcentrationEstimator
from analysis.face.expression import EMOTIONS, ExpressionConfig, ExpressionEstimator
from analysis.face.gaze import GazeConfig, GazeEstimator
from analysis.face.headpose import HeadPose, HeadPoseEstimator
from analysis.face.posture import PostureConfig, PostureEstimator, face_size_px


@dataclass(slots=True)
class TrackerConfig:
    """Calibration length plus each analyser's own config (see docs/analysis.md)."""

    calibration_ms: float = 5000.0
    min_calibration_frames: int = 10
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    blink: BlinkConfig = field(default_factory=BlinkConfig)
    gaze: GazeConfig = field(default_factory=GazeConfig)
    posture: PostureConfig = field(default_factory=PostureConfig)
    expression: ExpressionConfig = field(default_factory=ExpressionConfig)
    concentration: ConcentrationConfig = field(default_factory=ConcentrationConfig)


@dataclass(frozen=True, slots=True)
class FaceFrameResult:
    t_ms: float
    emotion: str
    emotion_scores: dict[str, float]
    emotion_confidence: float
    emotion_source: str
    blink_count: int
    blink_rate_per_min: float
    gaze_on_screen: bool
    gaze_stability: float
    head_pose: HeadPose
    posture_score: float
    concentration: float
    calibrated: bool

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (head_pose becomes {yaw, pitch, roll})."""
        d = asdict(self)
        d["head_pose"] = self.head_pose.as_dict()
        return d


@dataclass(frozen=True, slots=True)
class FaceSummary:
    """Session aggregates for the feedback report. Means are over frames."""

    frames: int
    duration_ms: float
    calibrated: bool
    mean_concentration: float
    gaze_on_screen_ratio: float
    mean_gaze_stability: float
    blink_count: int
    long_eye_closures: int
    blink_rate_per_min: float
    mean_posture_score: float
    emotion_distribution: dict[str, float]
    mean_emotion_scores: dict[str, float]
    dominant_emotion: str | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class FaceTracker:
    """Stateful per-session analyser. Not thread-safe: one session, one caller."""

    def __init__(
        self, width: int = 640, height: int = 480, config: TrackerConfig | None = None
    ) -> None:
        self.cfg = config or TrackerConfig()
        self.width, self.height = int(width), int(height)
        self.headpose = HeadPoseEstimator(self.width, self.height)
        self.blink = BlinkDetector(self.cfg.blink)
        self.gaze = GazeEstimator(self.cfg.gaze)
        self.posture = PostureEstimator(self.cfg.posture)
        self.expression = ExpressionEstimator(self.cfg.expression)
        self.concentration = ConcentrationEstimator(self.cfg.concentration)
        self.screen = ScreenBaseline(
            self.cfg.baseline, self.cfg.gaze.h_gain_deg, self.cfg.gaze.v_gain_deg
        )
        self.calibrated = False
        self._t_first: float | None = None
        self._t_last: float | None = None
        # Summary accumulators.
        self._n = 0
        self._sum_conc = 0.0
        self._sum_on = 0
        self._sum_stab = 0.0
        self._sum_post = 0.0
        self._emo_counts = dict.fromkeys(EMOTIONS, 0)
        self._emo_sums = [0.0] * len(EMOTIONS)

    def update(
        self,
        landmarks: np.ndarray,
        blendshapes: dict[str, float] | None,
        t_ms: float,
        width: int | None = None,
        height: int | None = None,
    ) -> FaceFrameResult:
        """Analyse one frame of normalised (478, 3) landmarks taken at ``t_ms``.

        ``blendshapes`` maps MediaPipe category names to numeric scores (None or empty:
        expression falls back to landmark geometry). ``width``/``height`` change the
        pixel geometry for this and later frames. Raises ValueError on malformed input.
        """
        lm = np.asarray(landmarks, dtype=np.float64)
        if lm.shape != (L.N_LANDMARKS, 3):
            raise ValueError(f"landmarks must have shape (478, 3), got {lm.shape}")
        if not np.isfinite(lm).all():
            raise ValueError("landmarks contain NaN or infinity")
        t = float(t_ms)
        if self._t_last is not None and t < self._t_last:
            raise ValueError(f"t_ms went backwards ({t} < {self._t_last})")
        if (width is not None and width != self.width) or (
            height is not None and height != self.height
        ):
            self.width = int(width or self.width)
            self.height = int(height or self.height)
            self.headpose.set_image_size(self.width, self.height)
        if self._t_first is None:
            self._t_first = t
        self._t_last = t
        w, h = self.width, self.height
        bs = blendshapes or None

        pose = self.headpose.estimate(lm)
        self.blink.update(lm, t, bs, w, h)
        # Iris points are garbage once the lids are (nearly) shut; a mere CLOSING state
        # also happens when looking down, where gaze must keep updating.
        eyes_closed = self.blink.state in (EyeState.CLOSED, EyeState.OPENING)
        on_screen = self.gaze.update(lm, pose, t, w, h, eyes_closed)
        size = face_size_px(lm, pose.yaw, w, h)
        posture = self.posture.update(pose, size, t)
        rot = self.headpose.rotation
        expr = self.expression.update(bs, lm, t, rot, w, h)
        blink_rate = self.blink.rate_per_min(t)
        head_dev = math.hypot(pose.yaw - self.gaze.yaw0, pose.pitch - self.gaze.pitch0)
        conc = self.concentration.update(on_screen, head_dev, blink_rate, t)

        if not eyes_closed:
            self.screen.add(t, pose.yaw, pose.pitch, pose.roll, size, self.gaze.h, self.gaze.v)
        if not self.calibrated:
            self.expression.add_calibration_frame(bs, lm, rot, w, h)
            if (
                t - self._t_first >= self.cfg.calibration_ms
                and len(self.screen) >= self.cfg.min_calibration_frames
            ):
                self._finish_calibration(t)
        elif self.screen.follow(t):
            self._set_gaze_baseline()

        stability = self.gaze.stability
        self._n += 1
        self._sum_conc += conc
        self._sum_on += on_screen
        self._sum_stab += stability
        self._sum_post += posture
        self._emo_counts[expr.emotion] += 1
        for i, v in enumerate(expr.scores.values()):
            self._emo_sums[i] += v

        return FaceFrameResult(
            t_ms=t,
            emotion=expr.emotion,
            emotion_scores=expr.scores,
            emotion_confidence=expr.confidence,
            emotion_source=expr.source,
            blink_count=self.blink.count,
            blink_rate_per_min=blink_rate,
            gaze_on_screen=on_screen,
            gaze_stability=stability,
            head_pose=pose,
            posture_score=posture,
            concentration=conc,
            calibrated=self.calibrated,
        )

    def _finish_calibration(self, t_ms: float) -> None:
        """The most frontal calibration frames give the screen's direction (gaze) and the
        resting head pose and distance (posture); the expression's are all frames' medians."""
        b = self.screen.start(t_ms)
        assert b is not None  # min_calibration_frames open-eye frames were added
        self.posture.set_baseline(b[YAW], b[PITCH], b[ROLL], b[SIZE])
        self._set_gaze_baseline()
        self.expression.finish_calibration()
        self.calibrated = True

    def _set_gaze_baseline(self) -> None:
        b = self.screen.value
        assert b is not None
        self.gaze.set_baseline(float(b[H]), float(b[V]), float(b[YAW]), float(b[PITCH]))

    def summary(self) -> FaceSummary:
        """Aggregates over every frame seen so far (safe to call at any time)."""
        n = self._n
        dur = 0.0 if self._t_first is None or self._t_last is None else self._t_last - self._t_first
        span = max(dur, self.cfg.blink.rate_min_span_ms)
        if n == 0:
            zeros = dict.fromkeys(EMOTIONS, 0.0)
            return FaceSummary(0, 0.0, False, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0, zeros, zeros, None)
        dist = {k: c / n for k, c in self._emo_counts.items()}
        return FaceSummary(
            frames=n,
            duration_ms=dur,
            calibrated=self.calibrated,
            mean_concentration=self._sum_conc / n,
            gaze_on_screen_ratio=self._sum_on / n,
            mean_gaze_stability=self._sum_stab / n,
            blink_count=self.blink.count,
            long_eye_closures=self.blink.long_closures,
            blink_rate_per_min=self.blink.count * 60_000.0 / span,
            mean_posture_score=self._sum_post / n,
            emotion_distribution=dist,
            mean_emotion_scores={k: v / n for k, v in zip(EMOTIONS, self._emo_sums, strict=True)},
            dominant_emotion=max(dist, key=dist.__getitem__),
        )
