"""What a session report is: its eight components and their labels, the minimum data it needs
for a total, the inputs it reads (protocols) and the dataclasses it returns.

Shared by the scoring (analysis.scoring), the reading of its inputs (analysis.report_inputs)
and its human text (analysis.report_text); imports none of them. Pure data, no numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

COMPONENTS: tuple[str, ...] = (
    "likability",
    "initiative",
    "tone",
    "concentration",
    "gaze_stability",
    "blinking",
    "posture",
    "expression",
)
LABELS: dict[str, tuple[str, str]] = {  # (ko, en)
    "likability": ("호감도", "likability"),
    "initiative": ("주도성", "initiative"),
    "tone": ("어조", "tone"),
    "concentration": ("집중도", "concentration"),
    "gaze_stability": ("시선 안정성", "gaze stability"),
    "blinking": ("눈 깜빡임", "blinking"),
    "posture": ("자세", "posture"),
    "expression": ("표정", "expression"),
    "total": ("종합", "total"),
}
FACE_COMPONENTS = ("concentration", "gaze_stability", "blinking", "posture", "expression")

# Thresholds the scoring applies and the summary quotes (docs/analysis.md explains each).
BLINK_HEALTHY = (10.0, 20.0)  # blinks/min scoring 100
# The least a session needs before it gets a total score: enough conversation, or enough
# camera time. Below both, the report says so instead of giving a confident number.
MIN_USER_TURNS = 2
MIN_USER_WORDS = 10
MIN_FACE_SPAN_S = 20.0


# --------------------------------------------------------------------------- inputs


class MessageLike(Protocol):
    """A stored message: the store's MessageRecord fits, so does ``Message``."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


class SampleLike(Protocol):
    """A timeline point: the store's Sample fits, so does ``TimelineSample``."""

    @property
    def t_ms(self) -> int | float: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


FaceSampleLike = SampleLike
VoiceSampleLike = SampleLike


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class TimelineSample:
    t_ms: float
    data: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class Scores:
    """0..100 each (1 decimal); None when the session gave no data for it."""

    likability: float | None = None
    initiative: float | None = None
    tone: float | None = None
    concentration: float | None = None
    gaze_stability: float | None = None
    blinking: float | None = None
    posture: float | None = None
    expression: float | None = None
    total: float | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    ko: str
    en: str


@dataclass(frozen=True, slots=True)
class TimePoint:
    t_ms: int
    value: float


@dataclass(frozen=True, slots=True)
class UtterancePoint:
    t_ms: int
    pitch_hz: float | None
    pitch_var: float | None
    rate_wps: float | None
    volume_db: float | None
    pause_ratio: float | None
    energy: float | None
    warmth: float | None


@dataclass(frozen=True, slots=True)
class Timelines:
    concentration: list[TimePoint]
    emotion_distribution: dict[str, float]  # share of face samples per top emotion
    emotion_mean_scores: dict[str, float]  # mean soft score per emotion
    voice: list[UtterancePoint]


@dataclass(frozen=True, slots=True)
class SessionReport:
    version: int
    scores: Scores
    weights: dict[str, float]
    parts: dict[str, dict[str, float | None]]  # each component's 0..1 terms
    metrics: dict[str, float | int | str | None]
    counts: dict[str, int]
    enough_data: bool
    summary: Summary
    timelines: Timelines

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
