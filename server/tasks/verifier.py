"""Verifier, first half: did the screen change after an action? A perceptual difference of
gray thumbnails (analysis/screen.py); the VLM's check against the expected screen is the
second half (StepAnalysis.matches_expected_screen).

The thumbnail is larger than the vision pipeline's (256x144, cells of 16x16): a toggled
option or a counter going from 1 to 2 must count as a change, a blinking caret must not."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from analysis.screen import (
    InvalidImage,
    hash_distance,
    image_hash,
    max_cell_diff,
    mean_abs_diff,
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
    """Encoded screenshot -> the gray thumbnail the verifier compares (raises InvalidImage)."""
    return thumbnail(image, VERIFY_SIZE)


def compare(
    before: np.ndarray, after: np.ndarray, mean_threshold: float, cell_threshold: float
) -> ScreenDiff:
    mean = mean_abs_diff(before, after)
    cell = max_cell_diff(before, after, VERIFY_GRID)
    dist = hash_distance(image_hash(before), image_hash(after))
    return ScreenDiff(mean, cell, dist, mean >= mean_threshold or cell >= cell_threshold)


def image_size(image: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image (raises InvalidImage)."""
    img = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InvalidImage("could not decode image")
    return int(img.shape[1]), int(img.shape[0])
