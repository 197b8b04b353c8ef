"""Per-session face analysis: client landmarks and camera JPEGs -> one FaceTracker ->
throttled `analysis.face` events, a downsampled timeline in the store, and the affect the
persona reads before each reply.

Why a single slot (latest wins): a face reading is only useful while it is fresh. When
frames arrive faster than they are analysed, the waiting frame is replaced by the newer one
and the older is counted as dropped, so memory and latency stay bounded whatever a client
sends. Landmark frames cost ~0.15 ms in FaceTracker (measured, bench/perception.py) and run
on the loop; camera frames (JPEG decode + MediaPipe, ~10 ms) run in the face executor.

What a result becomes (event, sample, attention word) is in face_readings.py; the sampled,
batched store writes in face_timeline.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.face import FaceFrameResult, FaceTracker
from server.logging import get_logger
from server.pipelines.face_input import InvalidFaceInput, check_blendshapes, landmarks_array
from server.pipelines.face_readings import Source, attention_of, face_event
from server.pipelines.face_timeline import FaceTimeline, SaveSamples
from server.pipelines.screen_image import check_image
from server.providers.face import FaceLandmarkerProvider, FaceModelUnavailable, InvalidImage
from server.turns.gaze import GazeTimeline

log = get_logger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
ReportError = Callable[[str, str], Awaitable[None]]

MAX_CAMERA_PIXELS = 16_000_000  # a 4K frame is 8.3 MP; more is a decompression bomb


@dataclass(slots=True)
class FaceConfig:
    events_per_s: float = 4.0
    sample_interval_ms: int = 1000
    camera_max_fps: float = 15.0
    affect_max_age_s: float = 5.0

    @classmethod
    def from_settings(cls, s: Any) -> FaceConfig:
        return cls(
            events_per_s=s.face_events_per_s,
            sample_interval_ms=s.face_sample_interval_ms,
            camera_max_fps=s.camera_max_fps,
            affect_max_age_s=s.face_affect_max_age_s,
        )


@dataclass(slots=True)
class FaceFrame:
    source: Source
    t_ms: float
    landmarks: np.ndarray | None = None
    blendshapes: dict[str, float] | None = None
    jpeg: bytes | None = None
    # monotonic, when it arrived: the gaze timeline is on the clock of the mic frames'
    # arrival, however long the frame waited for analysis
    arrived: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class FaceStats:
    """Counters for logs and the `dropped` field of analysis.face."""

    received: int = 0
    analysed: int = 0
    dropped: int = 0  # replaced in the slot by a newer frame before analysis
    no_face: int = 0
    invalid: int = 0
    events: int = 0
    samples: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "analysed": self.analysed,
            "dropped": self.dropped,
            "no_face": self.no_face,
            "invalid": self.invalid,
            "events": self.events,
            "samples": self.samples,
        }


def detect_and_track(
    provider: FaceLandmarkerProvider, tracker: FaceTracker, jpeg: bytes, t_ms: float
) -> FaceFrameResult | None:
    """Worker-thread body for one camera frame (decode + MediaPipe + tracker); None when
    the frame shows no face."""
    det = provider.detect_jpeg(jpeg)
    if det is None:
        return None
    lm = det.landmarks.astype(np.float64)
    return tracker.update(lm, det.blendshapes or None, t_ms, det.width, det.height)


class FacePipeline:
    """One session's face analysis. Feed it with submit_*; it emits and stores by itself."""

    def __init__(
        self,
        config: FaceConfig,
        *,
        emit: Emit,
        report_error: ReportError,
        save_samples: SaveSamples,
        session_ms: Callable[[], float],
        provider: Callable[[], FaceLandmarkerProvider | None] = lambda: None,
        executor: Executor | None = None,
        on_model_status: Callable[[str, str], None] | None = None,
        logger: Any = log,
    ) -> None:
        self.cfg = config
        self._emit = emit
        self._report_error = report_error
        self._session_ms = session_ms
        self._provider = provider
        self._executor = executor
        self._on_model_status = on_model_status
        self.log = logger
        self.tracker = FaceTracker()
        self.stats = FaceStats()
        self.latest: FaceFrameResult | None = None
        self.latest_at = 0.0
        self.gaze = GazeTimeline()  # turn taking reads it (looking away, looking back)
        self.timeline = FaceTimeline(
            save_samples, config.sample_interval_ms, on_stored=self._count_stored, logger=logger
        )
        self._pending: FaceFrame | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._busy = False
        self._last_t: float | None = None  # newest frame time accepted, tracker clock
        self._last_event = -math.inf
        self._next_camera = 0.0
        self._closed = False

    # --- input (called on the loop by the session) -----------------------------------
    def submit_landmarks(
        self,
        points: list[list[float]] | np.ndarray,
        blendshapes: dict[str, float] | None,
        t_ms: float,
    ) -> None:
        """Validate now (so the client hears about bad input at once), analyse soon."""
        lm = landmarks_array(points)
        bs = check_blendshapes(blendshapes)
        t = self._accept_time(float(t_ms))
        self._put(FaceFrame("landmarks", t, landmarks=lm, blendshapes=bs))

    def submit_camera(self, jpeg: bytes, t_ms: float | None) -> None:
        """A camera frame; without a client time it is stamped with the session clock."""
        if why := check_image(jpeg, MAX_CAMERA_PIXELS):  # header only: refuse bombs early
            raise InvalidFaceInput(f"Camera frame ignored: {why}.", "invalid_image")
        if t_ms is None:
            t = max(self._session_ms(), self._last_t or 0.0)
        else:
            t = float(t_ms)
        self._put(FaceFrame("camera", self._accept_time(t), jpeg=jpeg))

    def _accept_time(self, t: float) -> float:
        if self._last_t is not None and t < self._last_t:
            raise InvalidFaceInput(
                f"t_ms went backwards ({t:g} after {self._last_t:g}); face frames need a "
                "non-decreasing clock. The frame was ignored."
            )
        self._last_t = t
        return t

    def _put(self, frame: FaceFrame) -> None:
        if self._closed:
            return
        self.stats.received += 1
        if self._pending is not None:
            self.stats.dropped += 1
        self._pending = frame
        self._wake.set()
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="face-pipeline")

    @property
    def idle(self) -> bool:
        """No frame waiting or being analysed."""
        return self._pending is None and not self._busy

    # --- worker ----------------------------------------------------------------------
    async def _run(self) -> None:
        # Head pose needs OpenCV, imported on first use (a 50 ms import): off the loop.
        await asyncio.to_thread(importlib.import_module, "cv2")
        while True:
            await self._wake.wait()
            self._wake.clear()
            frame, self._pending = self._pending, None
            if frame is None:
                continue
            self._busy = True
            try:
                if frame.source == "camera":
                    await self._camera(frame)
                else:
                    await self._publish(self._track(frame), frame)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.invalid += 1
                self.log.exception("face_frame_failed", source=frame.source)
            finally:
                self._busy = False
            await asyncio.sleep(0)  # let the reader refill the slot: latest wins

    def _track(self, frame: FaceFrame) -> FaceFrameResult:
        assert frame.landmarks is not None
        return self.tracker.update(frame.landmarks, frame.blendshapes, frame.t_ms)

    async def _camera(self, frame: FaceFrame) -> None:
        wait = self._next_camera - time.monotonic()
        if wait > 0:  # camera_max_fps: wait, and take whatever is newest afterwards
            await asyncio.sleep(wait)
            newer = self._pending
            if newer is not None and newer.source == "camera":
                self._pending = None
                self.stats.dropped += 1
                frame = newer
        self._next_camera = time.monotonic() + 1.0 / self.cfg.camera_max_fps
        provider = self._provider()
        if provider is None:
            self.stats.invalid += 1
            await self._report_error(
                "not_supported", "Camera frames need the server face model, which is disabled."
            )
            return
        assert frame.jpeg is not None
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, detect_and_track, provider, self.tracker, frame.jpeg, frame.t_ms
            )
        except InvalidImage as e:
            self.stats.invalid += 1
            await self._report_error("invalid_image", f"Camera frame ignored: {e}.")
            return
        except FaceModelUnavailable as e:
            self.stats.invalid += 1
            if self._on_model_status:
                self._on_model_status("error", str(e))
            await self._report_error("face_unavailable", f"Face analysis is unavailable: {e}")
            return
        if self._on_model_status:
            self._on_model_status("ready", "")
        if result is None:
            self.stats.no_face += 1
            if self._due_event():
                await self._send(
                    {
                        "type": "analysis.face",
                        "t_ms": round(frame.t_ms),
                        "face": False,
                        "source": "camera",
                        "dropped": self.stats.dropped,
                    }
                )
            return
        await self._publish(result, frame)

    async def _publish(self, r: FaceFrameResult, frame: FaceFrame) -> None:
        self.stats.analysed += 1
        self.latest, self.latest_at = r, time.monotonic()
        self.gaze.update(bool(r.gaze_on_screen), frame.arrived)
        if self._due_event():
            await self._send(face_event(r, frame.t_ms, frame.source, self.stats.dropped))
        self.timeline.offer(r, self._session_ms())

    def _due_event(self) -> bool:
        now = time.monotonic()
        if now - self._last_event < 1.0 / self.cfg.events_per_s:
            return False
        self._last_event = now
        return True

    async def _send(self, event: dict[str, Any]) -> None:
        """The session sends these as droppable: a full outbound queue drops, never waits."""
        self.stats.events += 1
        await self._emit(event)

    # --- timeline --------------------------------------------------------------------
    def _count_stored(self, n: int) -> None:
        self.stats.samples += n

    async def flush(self) -> None:
        """Store every buffered sample now (session end) and wait for writes in flight."""
        await self.timeline.flush()

    async def close(self) -> None:
        """Stop analysing, store what is buffered, log the counters. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._pending is not None:  # never analysed: counts as dropped
            self._pending = None
            self.stats.dropped += 1
        await self.flush()
        if self.stats.received:
            summary = self.tracker.summary()
            self.log.info(
                "face_pipeline_closed",
                **self.stats.as_dict(),
                dominant_emotion=summary.dominant_emotion,
                mean_concentration=round(summary.mean_concentration, 1),
            )

    # --- what the persona perceives --------------------------------------------------
    def latest_affect(self) -> dict[str, Any] | None:
        """{"emotion", "emotion_confidence", "attention", "concentration"} from a face
        seen in the last few s."""
        r = self.latest
        if r is None or time.monotonic() - self.latest_at > self.cfg.affect_max_age_s:
            return None
        return {
            "emotion": r.emotion,
            "emotion_confidence": round(r.emotion_confidence, 3),
            "attention": attention_of(r),
            "concentration": round(r.concentration),
        }
