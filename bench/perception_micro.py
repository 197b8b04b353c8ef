"""bench/perception.py's in-process costs: FaceTracker.update per landmark frame, reading one
frame on the event loop (face.landmarks JSON or binary 0x04) and MediaPipe's FaceLandmarker
per camera JPEG, on the astronaut test image's face."""

from __future__ import annotations

import json
import time
from typing import Any

import cv2
import numpy as np
import skimage.data

from analysis.face import FaceTracker
from server.hub import protocol as p
from server.pipelines.face_input import landmarks_array
from server.providers.face import FaceLandmarkerProvider


def astronaut_jpeg() -> bytes:
    rgb = cv2.resize(skimage.data.astronaut(), (320, 240), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def offline_face(provider: FaceLandmarkerProvider, jpeg: bytes) -> tuple[np.ndarray, dict]:
    det = provider.detect_jpeg(jpeg)
    if det is None:
        raise RuntimeError("no face found in the astronaut image")
    return det.landmarks.astype(np.float64), det.blendshapes


def time_ms(fn: Any, n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def micro(provider: FaceLandmarkerProvider, jpeg: bytes, frames: int) -> dict[str, list[float]]:
    lm, bs = offline_face(provider, jpeg)
    rng = np.random.default_rng(0)
    noisy = [lm + rng.normal(0, 2e-4, lm.shape) for _ in range(64)]
    tracker = FaceTracker(320, 240)
    i = 0

    def update() -> None:
        nonlocal i
        tracker.update(noisy[i % 64], bs, i * 33.3)
        i += 1

    msg = json.dumps(
        {
            "type": "face.landmarks",
            "t_ms": 1000,
            "landmarks": np.round(lm, 5).tolist(),
            "blendshapes": {k: round(v, 4) for k, v in bs.items()},
        }
    )
    ev = p.parse_client_event(json.loads(msg))
    frame = p.face_frame(1000, lm, bs)

    def binary() -> None:
        _, points, _ = p.parse_face_frame(frame)
        landmarks_array(points)

    return {
        "tracker": time_ms(update, frames),
        "parse": time_ms(lambda: p.CLIENT_EVENTS.validate_json(msg), 1000),  # the hub's path
        "parse_old": time_ms(lambda: p.parse_client_event(json.loads(msg)), 1000),
        "convert": time_ms(lambda: landmarks_array(ev.landmarks), 1000),
        "binary": time_ms(binary, 1000),
        "frame_bytes": [float(len(frame))],
        "landmarker": time_ms(lambda: provider.detect_jpeg(jpeg), 100, warmup=5),
        "msg_bytes": [float(len(msg))],
    }
