"""Screen image checks: is this a usable screen image, and its thumbnail and hash.

Header-only checks (format, size, decompression bombs) are cheap enough for the event loop;
`prepare` decodes and must run in a worker thread. Used by the screen pipeline, the face
pipeline and the one-shot analyze endpoints.
"""

from __future__ import annotations

import struct

import numpy as np

from analysis.screen import InvalidImage, image_hash, max_cell_diff, mean_abs_diff, thumbnail

MAX_JPEG_SEGMENTS = 256  # header walk limit: real files reach the frame header in < 20
MAX_PIXELS = 64_000_000  # an 8K screen is 33 MP; more is a decompression bomb, not a screen
CELL_THRESHOLD = 0.15  # same as ChangeDetector's default: a 1/16 cell changing this much


def sniff_format(data: bytes) -> str | None:
    """ "jpeg", "png" or "webp" from the magic bytes (what the VLM data URL accepts)."""
    head = bytes(data[:12])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None when it cannot be read.

    Lets us refuse decompression bombs before OpenCV allocates the full image."""
    fmt = sniff_format(data)
    try:
        if fmt == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if fmt == "jpeg":
            return _jpeg_size(data)
        if fmt == "webp" and len(data) >= 30:
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers to the first SOFn frame header (a bounded number of them)."""
    i, n = 2, len(data)
    for _ in range(MAX_JPEG_SEGMENTS):
        if i + 4 > n:
            return None
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        seg = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE):
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        if seg < 2:
            return None
        i += 2 + seg
    return None


def check_image(data: bytes, max_pixels: int = MAX_PIXELS) -> str | None:
    """Why these bytes cannot be a screen image (cheap, header only), or None."""
    if not data:
        return "the frame is empty"
    fmt = sniff_format(data)
    if fmt is None:
        return f"not a JPEG, PNG or WebP image (starts with {bytes(data[:4]).hex()})"
    size = image_size(data)
    if size is not None:
        w, h = size
        if w <= 0 or h <= 0:
            return f"the {fmt.upper()} header gives an empty size {w}x{h}"
        if w * h > max_pixels:
            return f"{w}x{h} is larger than {max_pixels // 1_000_000} megapixels"
    return None


def prepare(data: bytes) -> tuple[np.ndarray, str]:
    """Validate, decode and thumbnail a frame; returns (thumbnail, image hash).

    CPU work (a few ms for a 1080p JPEG): run it in a worker thread. Raises InvalidImage."""
    import cv2  # lazily, like every OpenCV use: ~20 MB

    if why := check_image(data):
        raise InvalidImage(why)
    try:
        thumb = thumbnail(data)
    except cv2.error as e:
        raise InvalidImage(f"could not decode image: {e.msg or e}") from None
    return thumb, image_hash(thumb)


def same_screen(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """The change detector's rule, both ways: no global and no local change."""
    if a.shape != b.shape:
        return False
    return mean_abs_diff(a, b) < threshold and max_cell_diff(a, b) < CELL_THRESHOLD
