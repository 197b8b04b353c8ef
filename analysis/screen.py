"""Cheap screen-change detection and perceptual hashing on tiny grayscale thumbnails.

The VLM is slow and costs money, so the vision pipeline only describes a screen frame when
it differs enough from the last described one, and caches descriptions by perceptual hash
so returning to a screen seen before costs nothing. Formulas: docs/analysis.md
("Screen change detection").
"""

from __future__ import annotations

import numpy as np

THUMB_SIZE = (64, 36)  # (width, height): 16:9, keeps window-scale structure, ~2.3k pixels


class InvalidImage(ValueError):
    """Bytes that do not decode to an image, or an array that is not an image."""


def thumbnail(
    image: bytes | bytearray | memoryview | np.ndarray, size: tuple[int, int] = THUMB_SIZE
) -> np.ndarray:
    """Encoded image bytes (JPEG/PNG/WebP) or a BGR/BGRA/gray array -> uint8 gray (h, w).

    INTER_AREA averages whole pixel blocks, so JPEG noise and cursor blinks mostly vanish.
    """
    import cv2  # lazily: OpenCV is ~20 MB of a server that may never see a screen

    if isinstance(image, np.ndarray):
        img = image
    else:
        raw = np.frombuffer(bytes(image), dtype=np.uint8)
        img = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE) if raw.size else None
        if img is None:
            raise InvalidImage(f"could not decode image ({raw.size} bytes)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] in (3, 4):
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(_as_uint8(img), code)
    elif img.ndim != 2:
        raise InvalidImage(f"expected a gray or BGR(A) image array, got shape {img.shape}")
    if img.size == 0:
        raise InvalidImage("empty image")
    return cv2.resize(_as_uint8(img), size, interpolation=cv2.INTER_AREA)


def _as_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if np.issubdtype(img.dtype, np.floating):  # assume 0..1 floats
        return (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return np.clip(img, 0, 255).astype(np.uint8)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails as a fraction of full scale (0..1)."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16)))) / 255.0


def max_cell_diff(a: np.ndarray, b: np.ndarray, grid: tuple[int, int] = (4, 4)) -> float:
    """Largest mean absolute difference over a grid of cells (catches local changes)."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.float32) / 255.0
    rows, cols = grid
    cells = [
        float(cell.mean())
        for band in np.array_split(diff, rows, axis=0)
        for cell in np.array_split(band, cols, axis=1)
        if cell.size
    ]
    return max(cells) if cells else 0.0


class ChangeDetector:
    """Decides whether a new frame differs enough from the last *accepted* one.

    Comparing against the last accepted frame (not the previous frame) means a slow drift,
    such as scrolling a little at a time, still triggers once it adds up.
    """

    def __init__(
        self,
        threshold: float = 0.04,
        *,
        cell_threshold: float | None = 0.15,
        grid: tuple[int, int] = (4, 4),
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.cell_threshold = cell_threshold
        self.grid = grid
        self.reference: np.ndarray | None = None
        self.last_diff: float | None = None

    def changed(self, thumb: np.ndarray) -> bool:
        """True (and the frame becomes the new reference) on the first or a changed frame."""
        ref = self.reference
        if ref is None or ref.shape != thumb.shape:
            self.reference = thumb.copy()
            self.last_diff = None
            return True
        self.last_diff = mean_abs_diff(ref, thumb)
        hit = self.last_diff >= self.threshold
        if not hit and self.cell_threshold is not None:
            hit = max_cell_diff(ref, thumb, self.grid) >= self.cell_threshold
        if hit:
            self.reference = thumb.copy()
        return hit

    def reset(self) -> None:
        """Forget the reference so the next frame counts as changed (e.g. after a pause)."""
        self.reference = None
        self.last_diff = None


def image_hash(thumb: np.ndarray) -> str:
    """64-bit difference hash (dHash) as 16 hex digits: equal for near-identical screens.

    Each bit says whether a pixel is brighter than its right neighbour on a 9x8 gray image,
    so it ignores global brightness and mild JPEG noise.
    """
    gray = thumbnail(thumb, (9, 8))
    bits = (gray[:, 1:] > gray[:, :-1]).reshape(-1)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def hash_distance(a: str, b: str) -> int:
    """Hamming distance between two `image_hash` values (0 = same, 64 = opposite)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
