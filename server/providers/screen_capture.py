"""This machine's screen, for desktop mode (SCREEN_CAPTURE): monitors and JPEG grabs with
mss. Blocking (X I/O and encoding): callers run these in a worker thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CAPTURE_MAX_WIDTH = 1920  # larger desktops are scaled down before JPEG encoding
CAPTURE_JPEG_QUALITY = 80


class CaptureUnavailable(RuntimeError):
    """This machine's screen cannot be captured (no display, bad monitor index...)."""


def _mss() -> Any:
    import mss

    factory = getattr(mss, "MSS", None) or mss.mss
    return factory()


def probe_capture(monitor: int) -> str:
    """Check that the monitor can be grabbed; returns a short description of it."""
    try:
        with _mss() as sct:
            monitors = sct.monitors
            if monitor >= len(monitors):
                raise CaptureUnavailable(
                    f"SCREEN_MONITOR={monitor} does not exist "
                    f"(this display has monitors 1..{len(monitors) - 1}; 0 = all)"
                )
            m = monitors[monitor]
            return f"monitor {monitor}: {m['width']}x{m['height']}"
    except CaptureUnavailable:
        raise
    except Exception as e:
        raise CaptureUnavailable(f"no display to capture: {e}") from None


def grab_jpeg(monitor: int) -> bytes:
    """One screenshot of a monitor as JPEG (CPU and X I/O: run it in a worker thread)."""
    import cv2  # lazily, like every OpenCV use: ~20 MB

    try:
        with _mss() as sct:
            shot = sct.grab(sct.monitors[monitor])
            bgr = np.ascontiguousarray(np.asarray(shot)[:, :, :3])
    except Exception as e:
        raise CaptureUnavailable(f"screen capture failed: {e}") from None
    h, w = bgr.shape[:2]
    if w > CAPTURE_MAX_WIDTH:
        size = (CAPTURE_MAX_WIDTH, max(1, round(h * CAPTURE_MAX_WIDTH / w)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, CAPTURE_JPEG_QUALITY])
    if not ok:
        raise CaptureUnavailable("could not encode the screenshot as JPEG")
    return buf.tobytes()


@dataclass(frozen=True)
class Monitor:
    """Where a monitor is on the virtual desktop, and the size of its grabs (grab_jpeg)."""

    left: int
    top: int
    width: int
    height: int

    @property
    def shot_size(self) -> tuple[int, int]:
        if self.width <= CAPTURE_MAX_WIDTH:
            return self.width, self.height
        return CAPTURE_MAX_WIDTH, max(1, round(self.height * CAPTURE_MAX_WIDTH / self.width))

    def to_screen(self, x: float, y: float) -> tuple[int, int]:
        """A point of a grab (what the VLM saw) -> the desktop's pixel under it."""
        w, h = self.shot_size
        px = self.left + round(min(max(x, 0), w - 1) * self.width / w)
        py = self.top + round(min(max(y, 0), h - 1) * self.height / h)
        return px, py


def monitor_at(index: int) -> Monitor:
    try:
        with _mss() as sct:
            m = sct.monitors[index]
    except Exception as e:
        raise CaptureUnavailable(f"no display to capture: {e}") from None
    return Monitor(m["left"], m["top"], m["width"], m["height"])
