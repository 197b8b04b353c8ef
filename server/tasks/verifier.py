"""Verifier, first half: did the screen change after an action? A perceptual difference of
gray thumbnails (analysis/screen.py); the VLM's check against the expected screen is the
second half (StepAnalysis.matches_expected_screen).

The thumbnail is larger than the vision pipeline's (256x144, cells of 16x16): a toggled
option or a counter going from 1 to 2 must count as a change, a blinking caret must not."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.screen import (
    InvalidImage,
    hash_distance,
    image_hash,
    max_cell_diff,
    thumbnail,
)

VERIFY_SIZE = (256, 144)
VERIFY_GRID = (9, 16)  # rows, cols


@dataclass
class ScreenDiff:
    mean: float  # mean absolute difference, 0..1
    cell: float  # largest cell's mean absolute difference, 0..1
    hash_distance: int  # dHash bits that differ (0..64)
    changed: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "mean": round(self.mean, 4),
            "cell": round(self.cell, 4),
            "hash_distance": self.hash_distance,
            "changed": self.changed,
        }


def screen_thumb(image: bytes) -> np.ndarray:
    """Encoded screenshot -> the gray thumbnail the verifier compares (raises InvalidImage).

    A screen-sized JPEG is decoded at a quarter of its size (libjpeg scales while decoding:
    2.5x faster for 1280x720), which still leaves more pixels than the thumbnail has."""
    import cv2  # lazily, like every OpenCV use: ~20 MB

    raw = np.frombuffer(image, np.uint8)
    small = cv2.imdecode(raw, cv2.IMREAD_REDUCED_GRAYSCALE_4) if raw.size else None
    if small is not None and small.shape[1] >= VERIFY_SIZE[0]:
        return thumbnail(small, VERIFY_SIZE)
    return thumbnail(image, VERIFY_SIZE)


def compare(
    before: np.ndarray, after: np.ndarray, mean_threshold: float, cell_threshold: float
) -> ScreenDiff:
    """Mean and largest-cell absolute difference (cells of 16x16 thumbnail pixels, in one
    reshape: analysis.screen.max_cell_diff's general split costs 4 ms here), plus the dHash
    distance for the record."""
    diff = np.abs(before.astype(np.int16) - after.astype(np.int16))
    rows, cols = VERIFY_GRID
    h, w = diff.shape
    mean = float(diff.mean()) / 255.0
    if h % rows == 0 and w % cols == 0:
        cells = diff.reshape(rows, h // rows, cols, w // cols).mean(axis=(1, 3))
        cell = float(cells.max()) / 255.0
    else:
        cell = max_cell_diff(before, after, VERIFY_GRID)
    dist = hash_distance(image_hash(before), image_hash(after))
    return ScreenDiff(mean, cell, dist, mean >= mean_threshold or cell >= cell_threshold)


def check_screen(
    before: np.ndarray | None, image: bytes, mean_threshold: float, cell_threshold: float
) -> tuple[np.ndarray, ScreenDiff | None]:
    """The screen's thumbnail and, when there is a comparable one before it, the difference:
    one call, so a step pays one trip to a worker thread."""
    thumb = screen_thumb(image)
    if before is None or before.shape != thumb.shape:
        return thumb, None
    return thumb, compare(before, thumb, mean_threshold, cell_threshold)


def image_size(image: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image (raises InvalidImage)."""
    import cv2

    img = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InvalidImage("could not decode image")
    return int(img.shape[1]), int(img.shape[0])
