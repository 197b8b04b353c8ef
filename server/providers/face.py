"""Server-side face landmarks: MediaPipe Tasks ``FaceLandmarker`` on raw camera frames.

Why this exists: clients that cannot run MediaPipe themselves send JPEG camera frames;
the server turns them into the same (478, 3) landmarks + blendshapes that browser clients
send, so one analysis path (``analysis.face.FaceTracker``) serves both.

Choices:
- mediapipe >= 0.10.30 has no ``solutions`` API and ships no model: the Tasks API with a
  ``face_landmarker.task`` file, resolved from an explicit path, else the cache dir, else
  downloaded once into the cache dir (atomic rename, so a failed download leaves nothing).
- Running mode IMAGE, one face: frames arrive irregularly over a socket, so VIDEO mode's
  monotonic-timestamp tracking buys little and breaks on reconnects.
- Blocking and not thread-safe: callers use ``asyncio.to_thread``; a lock serialises
  calls (the graph inside MediaPipe must not run twice at once).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from server.models.download import DownloadError, download_file, is_task_file
from server.models.registry import ModelFile

DEFAULT_MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/"
    "face_landmarker/float16/latest/face_landmarker.task"
)
MODEL_FILENAME = "face_landmarker.task"


class FaceModelUnavailable(RuntimeError):
    """The model file cannot be found or downloaded. The message says what to do."""


class InvalidImage(ValueError):
    """The bytes or array are not a decodable image. The message is safe to show a user."""


@dataclass(frozen=True)
class FaceDetection:
    """One detected face: normalised landmarks (x, y in [0, 1] of width/height; z relative
    depth scaled like x) and blendshape scores by MediaPipe category name."""

    landmarks: np.ndarray  # (478, 3) float32
    blendshapes: dict[str, float]
    width: int
    height: int


class FaceLandmarkerProvider:
    """Lazily loaded MediaPipe FaceLandmarker (IMAGE mode, 1 face, blendshapes on)."""

    def __init__(
        self,
        model_path: Path | None,
        cache_dir: Path,
        model_url: str = DEFAULT_MODEL_URL,
        *,
        download_timeout_s: float = 60.0,
    ) -> None:
        self._explicit = Path(model_path) if model_path is not None else None
        self._cache_dir = Path(cache_dir)
        self._url = model_url
        self._timeout = download_timeout_s
        self._lock = threading.Lock()
        self._landmarker: Any = None
        self._closed = False
        self.model_path: Path | None = None

    # --- model resolution -------------------------------------------------------------

    def resolve_model(self) -> Path:
        """Explicit path, else ``cache_dir/face_landmarker.task``, else download it there."""
        if self._explicit is not None:
            if not self._explicit.is_file():
                raise FaceModelUnavailable(
                    f"face model file {self._explicit} does not exist; fix the configured "
                    "path or unset it to use the download cache"
                )
            return self._explicit
        cached = self._cache_dir / MODEL_FILENAME
        if cached.is_file() and is_task_file(cached):
            return cached
        self._download(cached)
        return cached

    def _download(self, dest: Path) -> None:
        spec = ModelFile(MODEL_FILENAME, self._url)
        try:
            download_file(spec, dest, timeout_s=self._timeout)
        except DownloadError as exc:
            why = "offline?" if exc.offline else str(exc)
            raise FaceModelUnavailable(
                f"could not download the face landmarker model from {self._url} ({why}). "
                f"Fix: run `desktopmate models download face` (online) or `desktopmate models "
                f"import PATH`, put {MODEL_FILENAME} at {dest}, or set FACE_MODEL_PATH"
            ) from None
        if not is_task_file(dest):
            dest.unlink(missing_ok=True)
            raise FaceModelUnavailable(f"{self._url} did not return a MediaPipe .task model file")

    def load(self) -> None:
        """Resolve the model and build the landmarker now (else on first detect)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> Any:
        if self._closed:
            raise RuntimeError("FaceLandmarkerProvider is closed")
        if self._landmarker is None:
            from mediapipe.tasks.python import BaseOptions, vision

            path = self.resolve_model()
            opts = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(path)),
                running_mode=vision.RunningMode.IMAGE,
                num_faces=1,
                output_face_blendshapes=True,
            )
            try:
                self._landmarker = vision.FaceLandmarker.create_from_options(opts)
            except (RuntimeError, ValueError) as exc:
                raise FaceModelUnavailable(
                    f"cannot load face model {path}: the file is damaged or not a face "
                    "landmarker model. Fix: run `desktopmate models download face` or "
                    "`desktopmate models import PATH`, or fix FACE_MODEL_PATH"
                ) from exc
            self.model_path = path
        return self._landmarker

    # --- detection --------------------------------------------------------------------

    def detect_jpeg(self, data: bytes) -> FaceDetection | None:
        """Decode a JPEG (or any format OpenCV reads) and detect; None when no face."""
        import cv2

        if not data:
            raise InvalidImage("empty image data")
        buf = np.frombuffer(data, dtype=np.uint8)
        try:
            bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        except cv2.error as exc:
            raise InvalidImage(f"cannot decode image ({len(data)} bytes)") from exc
        if bgr is None or bgr.size == 0:
            raise InvalidImage(f"cannot decode image ({len(data)} bytes): corrupt or not a JPEG")
        return self._detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def detect_rgb(self, array: np.ndarray) -> FaceDetection | None:
        """Detect on an RGB uint8 array (H, W, 3); gray (H, W) and RGBA are converted."""
        a = np.asarray(array)
        if a.dtype != np.uint8:
            raise InvalidImage(f"expected uint8 pixels, got {a.dtype}")
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        elif a.ndim == 3 and a.shape[2] == 4:
            a = a[:, :, :3]
        if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
            raise InvalidImage(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
        return self._detect(np.ascontiguousarray(a))

    def _detect(self, rgb: np.ndarray) -> FaceDetection | None:
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
        with self._lock:
            result = self._ensure().detect(image)
        if not result.face_landmarks:
            return None
        lms = result.face_landmarks[0]
        landmarks = np.array([(p.x, p.y, p.z) for p in lms], dtype=np.float32)
        blendshapes: dict[str, float] = {}
        if result.face_blendshapes:
            blendshapes = {c.category_name: float(c.score) for c in result.face_blendshapes[0]}
        return FaceDetection(landmarks, blendshapes, width=rgb.shape[1], height=rgb.shape[0])

    # --- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        """Release the MediaPipe graph; later detects raise RuntimeError."""
        with self._lock:
            self._closed = True
            if self._landmarker is not None:
                self._landmarker.close()
                self._landmarker = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
