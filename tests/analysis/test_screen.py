"""Screen change detection and hashing on synthetic screenshots encoded as real JPEG/PNG."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from analysis.screen import (
    THUMB_SIZE,
    ChangeDetector,
    InvalidImage,
    hash_distance,
    image_hash,
    mean_abs_diff,
    thumbnail,
)


def desktop(seed: int = 0) -> np.ndarray:
    """A 1280x720 BGR 'desktop': background gradient, a window, some text lines."""
    rng = np.random.default_rng(seed)
    img = np.zeros((720, 1280, 3), np.uint8)
    img[:] = np.linspace(60, 160, 1280, dtype=np.uint8)[None, :, None]
    cv2.rectangle(img, (100, 80), (900, 600), (245, 245, 245), -1)
    for i in range(12):
        width = int(rng.integers(200, 700))
        cv2.rectangle(img, (130, 120 + 36 * i), (130 + width, 134 + 36 * i), (40, 40, 40), -1)
    return img


def jpeg(img: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def test_thumbnail_from_jpeg_png_and_arrays() -> None:
    img = desktop()
    from_jpeg = thumbnail(jpeg(img))
    assert from_jpeg.shape == (THUMB_SIZE[1], THUMB_SIZE[0]) and from_jpeg.dtype == np.uint8
    ok, png = cv2.imencode(".png", img)
    assert ok
    from_png = thumbnail(png.tobytes())
    from_bgr = thumbnail(img)
    from_bgra = thumbnail(cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))
    from_gray = thumbnail(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    from_float = thumbnail(img.astype(np.float32) / 255.0)
    for t in (from_png, from_bgra, from_gray, from_float):
        assert mean_abs_diff(from_bgr, t) < 0.005
    assert mean_abs_diff(from_bgr, from_jpeg) < 0.01
    assert thumbnail(img, (32, 18)).shape == (18, 32)


@pytest.mark.parametrize(
    "data", [b"", b"not an image at all", jpeg(desktop())[:200]], ids=["empty", "text", "cut"]
)
def test_undecodable_bytes_raise_invalid_image(data: bytes) -> None:
    with pytest.raises(InvalidImage) as info:
        thumbnail(data)
    assert isinstance(info.value, ValueError)


def test_bad_arrays_raise_invalid_image() -> None:
    with pytest.raises(InvalidImage):
        thumbnail(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InvalidImage):
        thumbnail(np.zeros((0, 4), np.uint8))


def test_identical_and_recompressed_frames_are_unchanged() -> None:
    img = desktop()
    det = ChangeDetector()
    assert det.changed(thumbnail(jpeg(img))) is True  # first frame is always news
    assert det.changed(thumbnail(jpeg(img))) is False
    assert det.last_diff == 0.0
    assert det.changed(thumbnail(jpeg(img, quality=40))) is False  # codec noise only
    assert det.last_diff is not None and det.last_diff < det.threshold


def test_drawn_rectangle_is_a_change() -> None:
    img = desktop()
    det = ChangeDetector()
    det.changed(thumbnail(jpeg(img)))
    dialog = img.copy()
    cv2.rectangle(dialog, (400, 250), (880, 520), (30, 30, 200), -1)  # a dialog pops up
    assert det.changed(thumbnail(jpeg(dialog))) is True
    assert det.changed(thumbnail(jpeg(dialog))) is False  # now the reference


def test_small_local_change_needs_the_cell_check() -> None:
    img = desktop()
    toast = img.copy()
    cv2.rectangle(toast, (1000, 600), (1270, 710), (0, 0, 0), -1)  # a notification corner
    base, after = thumbnail(img), thumbnail(toast)
    assert mean_abs_diff(base, after) < 0.04  # too small for the global mean alone
    only_mean = ChangeDetector(cell_threshold=None)
    only_mean.changed(base)
    assert only_mean.changed(after) is False
    with_cells = ChangeDetector()
    with_cells.changed(base)
    assert with_cells.changed(after) is True


def test_slow_drift_accumulates_against_last_accepted_frame() -> None:
    det = ChangeDetector(threshold=0.05, cell_threshold=None)
    frame = np.full((36, 64), 100, np.uint8)
    assert det.changed(frame)
    fired = []
    for step in range(1, 8):  # brighten by 4 levels (~1.6 %) per frame
        fired.append(det.changed(np.full((36, 64), 100 + 4 * step, np.uint8)))
    assert fired[:3] == [False, False, False]
    assert any(fired)  # fires once the total crosses 5 %
    det.reset()
    assert det.changed(frame) is True
    with pytest.raises(ValueError):
        ChangeDetector(threshold=0)


def test_hash_is_stable_and_discriminates() -> None:
    img = desktop(seed=1)
    h = image_hash(thumbnail(jpeg(img)))
    assert len(h) == 16 and int(h, 16) >= 0
    assert image_hash(thumbnail(jpeg(img))) == h  # deterministic
    assert hash_distance(image_hash(thumbnail(jpeg(img, quality=35))), h) <= 2
    brighter = cv2.convertScaleAbs(img, alpha=1.0, beta=25)
    assert hash_distance(image_hash(thumbnail(brighter)), h) <= 4
    other = image_hash(thumbnail(jpeg(desktop(seed=2)[:, ::-1].copy())))
    assert hash_distance(other, h) > 10
    assert hash_distance(h, h) == 0
