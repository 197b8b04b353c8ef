"""Screen pipeline against the loopback fake vision server: real JPEGs drawn with OpenCV, the
real VisionClient, cache and describer; only the VLM endpoint is a test double."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import math
import os
import shutil
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from server.pipelines.desktop_capture import ScreenCapture
from server.pipelines.screen_describer import DescriptionCache, PreparedFrame, ScreenDescriber
from server.pipelines.screen_image import MAX_PIXELS, check_image, image_size, prepare
from server.pipelines.vision import ScreenPipeline
from server.providers.screen_capture import CaptureUnavailable, grab_jpeg, probe_capture
from server.providers.vlm import VisionClient
from tests.fakes.openai_server import FakeOpenAI

# --------------------------------------------------------------------------- test images


def ui_image(variant: int = 0, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """A desktop mock: title bar, sidebar, text lines, a button. A variant adds a dark panel
    in its own cell of a 4x4 grid (past 16, a second panel too), so any two variants are
    different screens by the change detector's rule."""
    w, h = size
    img = np.full((h, w, 3), 238, np.uint8)
    cv2.rectangle(img, (0, 0), (w, 28), (60, 60, 60), -1)
    cv2.putText(img, "Editor - main.py", (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255,) * 3, 1)
    cv2.rectangle(img, (0, 28), (120, h), (210, 214, 220), -1)
    for i in range(8):
        y = 60 + 30 * i
        cv2.putText(img, f"def f{i}(x): return x", (140, y), 0, 0.5, (20, 20, 20), 1)
    cv2.rectangle(img, (w - 130, h - 50), (w - 20, h - 15), (200, 120, 40), -1)
    cv2.putText(img, "Run", (w - 95, h - 25), 0, 0.6, (255,) * 3, 2)
    if variant:
        cells = [(variant - 1) % 16]
        if variant > 16:
            cells.append((variant // 16 * 5 + 2) % 16)
        cw, ch = w // 4, h // 4
        for c in cells:
            x, y = (c % 4) * cw, (c // 4) * ch
            cv2.rectangle(img, (x + 4, y + 4), (x + cw - 4, y + ch - 4), (90, 40, 30), -1)
            cv2.putText(img, f"Dialog {variant}", (x + 10, y + 30), 0, 0.5, (255,) * 3, 1)
    return img


def encode(img: np.ndarray, ext: str = ".jpg", quality: int = 85) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, img, params)
    assert ok
    return buf.tobytes()


def ui_jpeg(variant: int = 0, quality: int = 85) -> bytes:
    return encode(ui_image(variant), ".jpg", quality)


CORRUPT_JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8  # JPEG magic, garbage after


# --------------------------------------------------------------------------- fixtures


def vlm_requests(fake: FakeOpenAI) -> list[dict[str, Any]]:
    """Chat calls that carried an image: the VLM calls."""
    return [r for r in fake.chat_requests(mem0=False) if r["images"]]


def describe_by_image(fake: FakeOpenAI, chat_reply: str = "Okay.") -> dict[str, str]:
    """Make the fake describe each distinct image as 'screen #n' (n in order of first
    sight) and answer other chat calls with chat_reply; returns the sha1(data URL) -> text
    map it fills."""
    seen: dict[str, str] = {}

    def reply(body: dict[str, Any]) -> str:
        urls = [
            p["image_url"]["url"]
            for m in body["messages"]
            if isinstance(m.get("content"), list)
            for p in m["content"]
            if p.get("type") == "image_url"
        ]
        if not urls:
            return chat_reply
        digest = hashlib.sha1(urls[0].encode()).hexdigest()
        return seen.setdefault(digest, f"screen #{len(seen) + 1}")

    fake.set_default(reply)
    return seen


class Sink:
    """What a session would send: the pipeline's events and errors, in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._new = asyncio.Event()

    async def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._new.set()

    async def error(self, code: str, message: str) -> None:
        await self.emit({"type": "error", "code": code, "message": message})

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["type"] == type_ and all(e.get(k) == v for k, v in match.items())
        ]

    async def wait(self, type_: str, n: int = 1, timeout: float = 10.0, **match: Any) -> list:
        async with asyncio.timeout(timeout):
            while len(self.of(type_, **match)) < n:
                self._new.clear()
                await self._new.wait()
        return self.of(type_, **match)


@pytest.fixture
async def describer(fake_openai: FakeOpenAI) -> AsyncIterator[ScreenDescriber]:
    describe_by_image(fake_openai)
    client = VisionClient(fake_openai.base_url, "k", "fake-vlm", timeout_s=10, max_retries=0)
    d = ScreenDescriber(client, DescriptionCache(16))
    yield d
    await d.aclose()


@pytest.fixture
async def make_pipeline(
    describer: ScreenDescriber,
) -> AsyncIterator[Callable[..., tuple[ScreenPipeline, Sink]]]:
    made: list[ScreenPipeline] = []

    def make(user: str = "u1", min_interval_s: float = 0.0) -> tuple[ScreenPipeline, Sink]:
        sink = Sink()
        pipe = ScreenPipeline(describer, user, sink.emit, sink.error, min_interval_s=min_interval_s)
        made.append(pipe)
        return pipe, sink

    yield make
    for p in made:
        await p.close()


async def settle(pipe: ScreenPipeline) -> None:
    """Wait until the pipeline has nothing pending (every fed frame was handled)."""
    async with asyncio.timeout(10):
        await pipe.wait_until(lambda: pipe.idle)


# --------------------------------------------------------------------------- image checks


def test_image_size_reads_headers_of_jpeg_png_and_webp() -> None:
    img = ui_image(0, (333, 121))
    assert image_size(encode(img, ".jpg")) == (333, 121)
    assert image_size(encode(img, ".png")) == (333, 121)
    assert image_size(encode(img, ".webp")) == (333, 121)
    assert image_size(b"GIF89a....") is None


def test_check_image_refuses_non_images_and_decompression_bombs() -> None:
    assert check_image(ui_jpeg()) is None
    assert check_image(b"") == "the frame is empty"
    assert "not a JPEG, PNG or WebP" in (check_image(b"GIF89a" + b"\0" * 20) or "")
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 20000, 9000)
    assert f"larger than {MAX_PIXELS // 1_000_000} megapixels" in (check_image(bomb) or "")


def test_prepare_decodes_and_rejects_corrupt_jpeg() -> None:
    thumb, key = prepare(ui_jpeg(1))
    assert thumb.shape == (36, 64) and len(key) == 16
    with pytest.raises(ValueError, match="could not decode"):
        prepare(CORRUPT_JPEG)


def test_cache_needs_matching_thumbnail_and_evicts_least_recent() -> None:
    cache = DescriptionCache(size=2)
    a, key_a = prepare(ui_jpeg(1))
    b, _ = prepare(ui_jpeg(2))
    cache.put("u", key_a, a, "A")
    assert cache.get("u", key_a, a) == "A"
    assert cache.get("u", key_a, b) is None  # same hash slot, different screen: a miss
    assert cache.get("other-user", key_a, a) is None  # scoped by user
    k2, k3 = "0" * 16, "f" * 16  # far from key_a and each other
    cache.put("u", k2, b, "B")
    cache.get("u", key_a, a)  # A is now the most recent
    cache.put("u", k3, a, "C")  # evicts k2
    assert cache.get("u", k2, b) is None and cache.get("u", key_a, a) == "A"
    assert cache.stats() == {"entries": 2, "hits": 3, "misses": 3}


def test_cached_descriptions_expire_after_the_ttl() -> None:
    now = [100.0]
    cache = DescriptionCache(size=8, ttl_s=600, clock=lambda: now[0])
    a, key_a = prepare(ui_jpeg(1))
    cache.put("u", key_a, a, "A")
    now[0] += 599
    assert cache.get("u", key_a, a) == "A"
    now[0] += 2  # 601 s after it was described: the screen may show something else now
    assert cache.get("u", key_a, a) is None
    assert cache.stats() == {"entries": 0, "hits": 1, "misses": 1}


# --------------------------------------------------------------------------- pipeline


async def test_identical_frames_cost_one_call_and_a_change_another(
    fake_openai: FakeOpenAI, make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]]
) -> None:
    pipe, sink = make_pipeline()
    for _ in range(3):
        assert pipe.feed(ui_jpeg(0), 100) is None
        await settle(pipe)
    # a re-encoded copy of the same screen is the same screen too
    pipe.feed(ui_jpeg(0, quality=60), 150)
    await settle(pipe)
    assert len(vlm_requests(fake_openai)) == 1
    [first] = sink.of("vision.description")
    assert first == {
        "type": "vision.description",
        "t_ms": 100,
        "text": "screen #1",
        "cached": False,
    }
    pipe.feed(ui_jpeg(5), 200)
    await sink.wait("vision.description", 2)
    assert len(vlm_requests(fake_openai)) == 2
    assert sink.of("vision.description")[1]["text"] == "screen #2"
    assert pipe.latest_text == "screen #2"
    assert pipe.stats.unchanged == 3 and pipe.stats.vlm_calls == 2
    # the image went out as a base64 JPEG data URL of the exact bytes
    url = vlm_requests(fake_openai)[1]["images"][0]
    assert url == "data:image/jpeg;base64," + base64.b64encode(ui_jpeg(5)).decode()


async def test_min_interval_between_vlm_calls_holds(
    fake_openai: FakeOpenAI, make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]]
) -> None:
    pipe, sink = make_pipeline(min_interval_s=1.0)
    frames = [ui_jpeg(i + 1) for i in range(20)]
    start = time.monotonic()
    for i, jpeg in enumerate(frames):  # a new screen every 100 ms for 2 s
        await asyncio.sleep(max(0.0, start + i * 0.1 - time.monotonic()))
        pipe.feed(jpeg, i * 100)
    span = time.monotonic() - start
    await settle(pipe)
    calls = vlm_requests(fake_openai)
    # call k (k >= 2) needs a frame newer than call k-1, which began >= k-2 s after the
    # first: frames spanning 1.9 s allow 3 calls (4 only if feeding lagged past 2 s)
    assert 2 <= len(calls) <= 2 + math.floor(span + 0.05), (len(calls), span)
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(calls)]
    # 1 s between call starts, less HTTP jitter: the fake stamps each request's arrival, and
    # a first request delayed on a loaded machine shortens the gap after it (0.889 s seen at
    # load 9); no limit at all would make calls ~0.1 s apart, one per frame
    assert all(g >= 0.6 for g in gaps), gaps
    # frames that arrived during the wait replaced each other: the last one was described
    assert sink.of("vision.description")[-1]["t_ms"] == 1900
    assert pipe.stats.frames == 20 and pipe.stats.vlm_calls == len(calls)


async def test_corrupt_frames_get_an_error_and_the_pipeline_goes_on(
    fake_openai: FakeOpenAI, make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]]
) -> None:
    pipe, sink = make_pipeline()
    assert "not a JPEG" in (pipe.feed(b"hello, not an image") or "")  # refused at the door
    assert pipe.feed(CORRUPT_JPEG) is None  # header looks fine: found out when decoded
    [err] = await sink.wait("error", code="invalid_image")
    assert "could not decode image" in err["message"]
    pipe.feed(ui_jpeg(3), 10)
    [desc] = await sink.wait("vision.description")
    assert desc["text"] == "screen #1" and desc["t_ms"] == 10
    assert pipe.stats.invalid == 2 and len(vlm_requests(fake_openai)) == 1


async def test_vlm_failure_is_reported_once_and_the_frame_retried(
    fake_openai: FakeOpenAI, make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]]
) -> None:
    pipe, sink = make_pipeline(min_interval_s=0.05)
    fake_openai.queue_reply(fail_status=500)
    fake_openai.queue_reply(fail_status=503)
    pipe.feed(ui_jpeg(1), 1)
    [desc] = await sink.wait("vision.description")
    assert desc["text"] == "screen #1"
    errors = sink.of("error")
    assert [e["code"] for e in errors] == ["vlm_error"]
    assert "HTTP 500" in errors[0]["message"]
    assert pipe.stats.vlm_errors == 2 and len(vlm_requests(fake_openai)) == 3


async def test_fresh_skips_the_interval_for_a_waiting_frame(
    fake_openai: FakeOpenAI, make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]]
) -> None:
    pipe, sink = make_pipeline(min_interval_s=60.0)
    pipe.feed(ui_jpeg(1), 1)
    await sink.wait("vision.description")
    pipe.feed(ui_jpeg(2), 2)  # changed, but the next call is a minute away
    await settle_prepare(pipe)
    assert len(vlm_requests(fake_openai)) == 1
    assert await pipe.fresh(10.0) == "screen #2"
    assert len(vlm_requests(fake_openai)) == 2
    # once: the next changed frame waits for the interval again
    pipe.feed(ui_jpeg(3), 3)
    await settle_prepare(pipe)
    assert not pipe.idle and len(vlm_requests(fake_openai)) == 2


async def settle_prepare(pipe: ScreenPipeline) -> None:
    """Wait until the frame fed last went through decoding and change detection."""
    async with asyncio.timeout(10):
        await pipe.wait_until(lambda: not pipe.decoding)


async def test_fresh_returns_latest_when_nothing_is_pending(
    fake_openai: FakeOpenAI, make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]]
) -> None:
    pipe, sink = make_pipeline()
    assert await pipe.fresh(5.0) is None  # no screen at all: no wait, nothing to say
    pipe.feed(ui_jpeg(1), 1)
    await sink.wait("vision.description")
    await settle(pipe)
    assert await pipe.fresh(5.0) == "screen #1"
    pipe.feed(ui_jpeg(1), 2)  # the same screen again: unchanged, so the latest is current
    assert await pipe.fresh(5.0) == "screen #1"
    assert len(vlm_requests(fake_openai)) == 1


async def test_fresh_gives_up_after_its_timeout(
    fake_openai: FakeOpenAI, make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]]
) -> None:
    pipe, sink = make_pipeline()
    fake_openai.queue_reply("slow screen", ttft_ms=3000)
    pipe.feed(ui_jpeg(1), 1)
    assert await pipe.fresh(0.2) is None
    [desc] = await sink.wait("vision.description")
    assert desc["text"] == "slow screen"


async def test_cache_serves_a_second_session_of_the_same_user_only(
    fake_openai: FakeOpenAI,
    describer: ScreenDescriber,
    make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]],
) -> None:
    first, sink1 = make_pipeline("alice", min_interval_s=60.0)
    first.feed(ui_jpeg(4), 1)
    await sink1.wait("vision.description")
    second, sink2 = make_pipeline("alice", min_interval_s=60.0)
    second.feed(ui_jpeg(4, quality=70), 2)  # the same screen, encoded differently
    [hit] = await sink2.wait("vision.description")
    assert hit["cached"] is True and hit["text"] == "screen #1"
    # a cached screen does not wait for the interval nor count as a VLM call
    first.feed(ui_jpeg(6), 3)  # new: waits a minute for its turn...
    await settle_prepare(first)
    first.feed(ui_jpeg(4), 4)  # ...and is replaced by a screen seen before
    await sink1.wait("vision.description", 2)
    assert sink1.of("vision.description")[1]["cached"] is True
    assert len(vlm_requests(fake_openai)) == 1
    other, sink3 = make_pipeline("bob")
    other.feed(ui_jpeg(4), 5)
    [miss] = await sink3.wait("vision.description")
    assert miss["cached"] is False and len(vlm_requests(fake_openai)) == 2
    assert describer.cache.hits == 2


async def test_one_call_for_the_same_frame_described_twice_at_once(
    fake_openai: FakeOpenAI, describer: ScreenDescriber
) -> None:
    fake_openai.queue_reply("a terminal", ttft_ms=300)
    thumb, key = prepare(ui_jpeg(7))
    frame = PreparedFrame(ui_jpeg(7), 0, thumb, key)
    a, b = await asyncio.gather(
        describer.describe("carol", frame), describer.describe("carol", frame)
    )
    assert sorted([a, b]) == [("a terminal", False), ("a terminal", True)]
    assert len(vlm_requests(fake_openai)) == 1


# --------------------------------------------------------------------------- desktop capture


def test_no_display_is_a_clear_capture_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(CaptureUnavailable, match="no display to capture"):
        probe_capture(1)


async def test_capture_failure_sets_error_status_and_keeps_sessions_alive(
    monkeypatch: pytest.MonkeyPatch,
    make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]],
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    statuses: list[tuple[str, str]] = []
    cap = ScreenCapture(0.05, 1, lambda s, why: statuses.append((s, why)))
    pipe, sink = make_pipeline()
    cap.subscribe(pipe)
    async with asyncio.timeout(10):
        await cap.wait_attempts(3)
    assert cap.failures >= 3 and cap.grabs == 0
    assert len(statuses) == 1 and statuses[0][0] == "error"  # reported on the transition
    assert "screen capture failed" in statuses[0][1]
    pipe.feed(ui_jpeg(1), 1)  # the session's own frames still work
    await sink.wait("vision.description")
    await pipe.close()
    assert cap.task is not None
    await asyncio.wait_for(cap.task, 10)  # no live subscriber left: the loop ends by itself
    assert cap.subscribers == 0


@contextlib.contextmanager
def virtual_display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A virtual X display (Debian package xvfb) as $DISPLAY; skips when not installed."""
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb) for a real capture test")
    read_fd, write_fd = os.pipe()
    # -noreset: by default Xvfb resets when its last client leaves, and a connection made
    # during that reset fails ("connection lost"): each mss call here is a new client.
    proc = subprocess.Popen(
        [
            exe,
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            "1280x720x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            number = f.readline().strip()  # written once the server accepts clients
        assert number.isdigit(), "Xvfb did not start"
        monkeypatch.setenv("DISPLAY", f":{number}")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with virtual_display(monkeypatch) as display:
        yield display


def test_real_capture_on_a_virtual_display(xvfb: str) -> None:
    assert probe_capture(1) == "monitor 1: 1280x720"
    jpeg = grab_jpeg(1)
    assert image_size(jpeg) == (1280, 720)
    assert prepare(jpeg)[0].shape == (36, 64)
    with pytest.raises(CaptureUnavailable, match="SCREEN_MONITOR=5 does not exist"):
        probe_capture(5)


async def test_capture_feeds_every_live_pipeline(
    xvfb: str,
    fake_openai: FakeOpenAI,
    make_pipeline: Callable[..., tuple[ScreenPipeline, Sink]],
) -> None:
    statuses: list[tuple[str, str]] = []
    cap = ScreenCapture(0.05, 1, lambda s, why: statuses.append((s, why)))
    pipes = [make_pipeline("zoe"), make_pipeline("zoe")]
    paused, _ = make_pipeline("zoe")
    for pipe, _ in pipes:
        cap.subscribe(pipe)
    cap.subscribe(paused, lambda: False)  # e.g. a paused session: not fed
    for _, sink in pipes:
        await sink.wait("vision.description")
    # one grab serves both sessions, and the same frame is described once
    assert len(vlm_requests(fake_openai)) == 1
    assert sorted(sink.of("vision.description")[0]["cached"] for _, sink in pipes) == [
        False,
        True,
    ]
    assert paused.stats.frames == 0 and statuses == []
    await cap.close()
