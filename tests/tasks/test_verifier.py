"""The verifier's screen diff on real encoded screenshots (drawn with OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from server.tasks.verifier import compare, image_size, screen_thumb

MEAN, CELL = 0.01, 0.03


def screen(*, toggled: bool = False, page: int = 0, caret: bool = False) -> bytes:
    img = np.full((720, 1280, 3), 245, np.uint8)
    cv2.putText(img, f"Page {page}", (60, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (20, 20, 20), 3)
    cv2.rectangle(img, (100, 200), (420, 260), (200, 60, 0) if toggled else (200, 200, 200), -1)
    if caret:  # a blinking text caret: 2x20 px
        cv2.line(img, (700, 400), (700, 420), (0, 0, 0), 2)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return jpeg.tobytes()


def test_same_screen_is_no_change_even_with_a_caret() -> None:
    before = screen_thumb(screen())
    assert compare(before, screen_thumb(screen()), MEAN, CELL).changed is False
    d = compare(before, screen_thumb(screen(caret=True)), MEAN, CELL)
    assert d.changed is False and d.cell < CELL


def test_a_toggled_option_counts_as_a_change() -> None:
    d = compare(screen_thumb(screen()), screen_thumb(screen(toggled=True)), MEAN, CELL)
    assert d.changed is True and d.cell >= CELL and d.cell > 10 * d.mean  # local


def test_a_new_page_counts_as_a_change() -> None:
    d = compare(screen_thumb(screen()), screen_thumb(screen(page=2)), MEAN, CELL)
    assert d.changed is True and d.as_dict()["changed"] is True


def test_image_size() -> None:
    assert image_size(screen()) == (1280, 720)
