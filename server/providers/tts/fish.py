"""Fish Speech (fishaudio/fish-speech ``tools/api_server.py``) over HTTP, with voice cloning.

Why: it clones the user's voice zero-shot from one reference WAV sent with each request,
so no per-user model or server-side registration is needed. The request is fish-speech's
``ServeTTSRequest`` sent as MessagePack (raw reference bytes, how fish-speech's own client
talks) when ``ormsgpack`` is importable, else as JSON with base64 reference audio (the
server decodes base64 strings). With ``format="wav"`` the response is streamed: a WAV
header, then PCM16. We strip the header and yield ``pcm16`` chunks at the parsed rate so
downstream code can simply concatenate them.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from .base import AudioChunk, TTSError, TTSProvider, Voice

if TYPE_CHECKING:
    import httpx

ReferenceLoader = Callable[[str | None], Awaitable[bytes | None]]

_WAVE_PCM, _WAVE_FLOAT, _WAVE_EXTENSIBLE = 1, 3, 0xFFFE
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming headers do not know the data length


class WavStreamParser:
    """Incremental WAV reader: feed bytes as they arrive, get whole PCM16 mono frames back.

    Streaming WAV from fish-speech has a zero data length, so after the ``data`` chunk header
    everything is audio unless a real length was given. 16-bit PCM passes through; float32
    and multi-channel audio are converted (mono mix) so the output is always pcm16.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._header_done = False
        self.sample_rate = 0
        self.channels = 0
        self._bits = 0
        self._float = False
        self._remaining: int | None = None  # data bytes still expected; None = until EOF

    @property
    def header_done(self) -> bool:
        """True once ``fmt `` and the start of ``data`` were parsed."""
        return self._header_done

    def feed(self, data: bytes) -> bytes:
        """Add bytes; return PCM16 mono for every complete frame received so far."""
        self._buf += data
        if not self._header_done and not self._parse_header():
            return b""
        frame = self.channels * self._bits // 8
        usable = len(self._buf) - len(self._buf) % frame
        if self._remaining is not None:
            usable = min(usable, self._remaining)
            self._remaining -= usable
        raw = bytes(self._buf[:usable])
        del self._buf[:usable]
        if self._remaining == 0:
            self._buf.clear()  # trailing chunks (LIST, ...) are not audio
        return self._to_pcm16(raw)

    def finish(self) -> None:
        """End of stream: a response without a complete header is an error."""
        if not self._header_done:
            raise TTSError("fish-speech returned no WAV header")

    def _parse_header(self) -> bool:
        buf = self._buf
        if len(buf) < 12:
            return False
        if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
            raise TTSError("fish-speech returned something that is not WAV audio")
        pos = 12
        while True:
            if len(buf) < pos + 8:
                return False
            chunk_id = bytes(buf[pos : pos + 4])
            (size,) = struct.unpack_from("<I", buf, pos + 4)
            if chunk_id == b"data":
                if not self.sample_rate:
                    raise TTSError("fish-speech WAV has no fmt chunk before data")
                del buf[: pos + 8]
                self._remaining = None if size in _UNKNOWN_SIZES else size
                self._header_done = True
                return True
            if len(buf) < pos + 8 + size:
                return False
            if chunk_id == b"fmt ":
                self._parse_fmt(bytes(buf[pos + 8 : pos + 8 + size]))
            pos += 8 + size + (size & 1)

    def _parse_fmt(self, fmt: bytes) -> None:
        if len(fmt) < 16:
            raise TTSError("fish-speech WAV has a short fmt chunk")
        tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", fmt)
        if tag == _WAVE_EXTENSIBLE and len(fmt) >= 26:
            (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the subformat GUID
        if (tag, bits) not in ((_WAVE_PCM, 16), (_WAVE_FLOAT, 32)) or channels < 1 or rate < 1:
            raise TTSError(f"fish-speech WAV format not supported (tag {tag}, {bits} bits)")
        self.sample_rate, self.channels, self._bits = rate, channels, bits
        self._float = tag == _WAVE_FLOAT

    def _to_pcm16(self, raw: bytes) -> bytes:
        if not raw or (not self._float and self.channels == 1):
            return raw
        import numpy as np

        samples = np.frombuffer(raw, dtype="<f4" if self._float else "<i2")
        samples = samples.reshape(-1, self.channels).astype(np.float32)
        mono = samples.mean(axis=1)
        if self._float:
            mono = mono * 32767.0
        return np.clip(np.round(mono), -32768, 32767).astype("<i2").tobytes()


def _packer(wire: str) -> tuple[str, Callable[[dict[str, Any]], bytes]]:
    """Pick the body encoding: MessagePack if available (or asked for), else JSON."""
    if wire in ("auto", "msgpack"):
        try:
            import ormsgpack
        except ImportError:
            if wire == "msgpack":
                raise TTSError("fish-speech msgpack wire format needs ormsgpack") from None
        else:
            return "application/msgpack", ormsgpack.packb

    def pack_json(body: dict[str, Any]) -> bytes:
        refs = [
            {**ref, "audio": base64.b64encode(ref["audio"]).decode("ascii")}
            for ref in body.get("references", [])
        ]
        return json.dumps({**body, "references": refs}, ensure_ascii=False).encode()

    return "application/json", pack_json


class FishSpeechTTS(TTSProvider):
    """Fish Speech HTTP client; clones the user's voice from ``reference_loader(user_id)``."""

    name = "fish"

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        reference_loader: ReferenceLoader | None = None,
        format: Literal["wav", "mp3"] = "wav",
        timeout_s: float = 60.0,
        *,
        connect_timeout_s: float = 3.0,
        reference_text: str = "",
        chunk_length: int = 200,
        normalize: bool = True,
        latency: Literal["normal", "balanced"] = "normal",
        streaming: bool = True,
        mp3_sample_rate: int = 44100,
        wire: Literal["auto", "msgpack", "json"] = "auto",
        extra: dict[str, Any] | None = None,
    ) -> None:
        if format not in ("wav", "mp3"):
            raise ValueError("format must be 'wav' or 'mp3'")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.reference_loader = reference_loader
        self.format = format
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reference_text = reference_text
        self.chunk_length = chunk_length
        self.normalize = normalize
        self.latency = latency
        self.streaming = streaming and format == "wav"  # fish-speech streams WAV only
        self.mp3_sample_rate = mp3_sample_rate
        self.wire = wire
        self.extra = dict(extra or {})
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
            )
        return self._client

    async def _request_body(
        self, text: str, voice: str | None, user_id: str | None
    ) -> dict[str, Any]:
        reference: bytes | None = None
        if self.reference_loader is not None:
            try:
                reference = await self.reference_loader(user_id)
            except Exception as exc:  # a broken store must not look like a TTS outage
                raise TTSError(f"could not load the voice reference: {exc}") from exc
        body: dict[str, Any] = {
            "text": text,
            "chunk_length": self.chunk_length,
            "format": self.format,
            "latency": self.latency,
            "normalize": self.normalize,
            "streaming": self.streaming,
            "references": [],
            "reference_id": None,
            **self.extra,
        }
        if reference:
            body["references"] = [{"audio": reference, "text": self.reference_text}]
        elif voice:
            body["reference_id"] = voice  # a voice stored on the server, e.g. a persona's
        return body

    async def synthesize(
        self, text: str, voice: str | None = None, *, user_id: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        """POST /v1/tts and stream the answer (pcm16 for WAV, mp3 frames for MP3)."""
        if not text.strip():
            return
        import httpx

        # here, not at the top: it imports the openai SDK (2 s), and importing this package
        # stays cheap for a process that only speaks with espeak-ng (tests.speech.speak_fresh)
        from server.providers.failures import never_connected

        content_type, pack = _packer(self.wire)
        body = pack(await self._request_body(text, voice, user_id))
        parser = WavStreamParser() if self.format == "wav" else None
        try:
            async with self._http().stream(
                "POST", "/v1/tts", content=body, headers={"Content-Type": content_type}
            ) as response:
                if response.status_code != 200:
                    detail = (await response.aread())[:300].decode("utf-8", "replace")
                    raise TTSError(f"fish-speech HTTP {response.status_code}: {detail}")
                async for data in response.aiter_bytes():
                    if parser is None:
                        if data:
                            yield AudioChunk(data, "mp3", self.mp3_sample_rate)
                        continue
                    pcm = parser.feed(data)
                    if pcm:
                        yield AudioChunk(pcm, "pcm16", parser.sample_rate)
                if parser is not None:
                    parser.finish()
        except httpx.TimeoutException as exc:
            raise TTSError(f"fish-speech timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            if never_connected(exc):
                raise TTSError(f"fish-speech unreachable: {type(exc).__name__}: {exc}") from exc
            raise TTSError(
                f"fish-speech stopped mid-answer (the connection broke: {type(exc).__name__})"
            ) from exc

    async def list_voices(self) -> list[Voice]:
        """Reference voices stored on the server (``GET /v1/references/list``)."""
        import httpx

        try:
            response = await self._http().get(
                "/v1/references/list", headers={"Accept": "application/json"}
            )
            response.raise_for_status()
            ids = response.json().get("reference_ids", [])
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise TTSError(f"fish-speech voice list unavailable: {exc}") from exc
        return [Voice(str(i), str(i), "multi", self.name) for i in ids]

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
