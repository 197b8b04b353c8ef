"""A fake Fish Speech HTTP API server (``tools/api_server.py`` of fishaudio/fish-speech).

Wire format, as in fish-speech's ``fish_speech/utils/schema.py`` and ``tools/server/views.py``:

- ``POST /v1/tts`` takes a ``ServeTTSRequest``: ``text``, ``chunk_length`` (100..1000),
  ``format`` ("wav" | "pcm" | "mp3" | "opus"), ``references`` (list of ``{audio: bytes,
  text}``, in-context voice cloning), ``reference_id``, ``seed``, ``normalize``, ``streaming``,
  ``latency``, ``max_new_tokens``, ``top_p``, ``repetition_penalty``, ``temperature``.
  The body is MessagePack (``application/msgpack``, how fish-speech's own client sends raw
  reference bytes) or JSON, where reference audio travels as base64 text (fish-speech decodes
  base64 strings longer than 255 characters; this fake decodes any valid base64 string).
- Non-streaming answers a complete file; streaming (WAV only, else 400) sends a 44-byte WAV
  header with zero data length, then raw PCM16 chunks, like ``inference_wrapper`` does.
- ``GET|POST /v1/health``; ``POST /v1/references/add`` (id, audio, text as msgpack, JSON or
  multipart), ``GET /v1/references/list``, ``POST|DELETE /v1/references/delete``.
- Errors are JSON ``{"statusCode", "message", "error"}`` as fish-speech's handler sends.

The audio is a sine tone, 44.1 kHz mono 16-bit, ``seconds_per_char`` long per text character:
220 Hz normally, 330 Hz when a reference voice (inline or by id) was given, so a test can tell
from the audio alone that cloning reached the TTS server. "opus" is rejected (400): nothing
here needs it. "mp3" is encoded with PyAV (a project dependency).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import math
import threading
import time
import wave
from collections.abc import AsyncIterator
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from typing import Any

import numpy as np

from tests.fakes import HttpRequest, HttpResponse, LoopbackServer

__all__ = ["FakeFish", "sine_pcm16", "wav_bytes", "wav_stream_header"]

SAMPLE_RATE = 44100
_FORMATS = ("wav", "pcm", "mp3", "opus")
_CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "pcm": "application/octet-stream"}


def sine_pcm16(seconds: float, freq: float, rate: int = SAMPLE_RATE) -> bytes:
    """A sine tone as PCM16 LE mono bytes, with 5 ms fades so chunk joins do not click."""
    n = max(1, round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    wave_f = 0.3 * np.sin(2 * math.pi * freq * t)
    fade = min(n // 2, int(0.005 * rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave_f[:fade] *= ramp
        wave_f[-fade:] *= ramp[::-1]
    return (wave_f * 32767).astype("<i2").tobytes()


def wav_bytes(pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    """A complete mono 16-bit WAV file around ``pcm``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def wav_stream_header(rate: int = SAMPLE_RATE) -> bytes:
    """fish-speech's streaming header: a WAV header written with zero frames."""
    return wav_bytes(b"", rate)


def _mp3_bytes(pcm: bytes, rate: int) -> bytes:
    """Encode PCM16 mono to MP3 with PyAV (imported lazily: most tests never need it)."""
    import av

    samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        frame_size = 1152
        for start in range(0, samples.shape[1], frame_size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + frame_size]),
                format="s16",
                layout="mono",
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def _decode_audio_field(value: Any) -> bytes:
    """Reference audio: raw bytes (msgpack/multipart) or base64 text (JSON)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value.encode()
    if isinstance(value, list):  # JSON array of byte values
        return bytes(value)
    raise ValueError("audio must be bytes or base64 text")


def _multipart(request: HttpRequest) -> dict[str, Any]:
    """Fields of a multipart/form-data body; file parts come back as bytes."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP).parsebytes(head + request.body)
    out: dict[str, Any] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        is_file = part.get_param("filename", header="content-disposition") is not None
        out[str(name)] = payload if is_file else payload.decode()
    return out


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FakeFish(LoopbackServer):
    """A loopback Fish Speech server.

    ``first_chunk_ms`` delays the first audio chunk (time to first audio); ``chunk_delay_ms``
    is slept between streamed chunks of ``stream_chunk_ms`` audio each.
    """

    def __init__(
        self,
        *,
        seconds_per_char: float = 0.05,
        first_chunk_ms: float = 0,
        chunk_delay_ms: float = 0,
        stream_chunk_ms: int = 200,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        super().__init__()
        self.seconds_per_char = seconds_per_char
        self.first_chunk_ms = first_chunk_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.stream_chunk_ms = stream_chunk_ms
        self.sample_rate = sample_rate
        self.references: dict[str, dict[str, Any]] = {}  # id -> {"audio": bytes, "text": str}
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._breaks = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (fish-speech clients append /v1/tts themselves)."""
        return self.root_url

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """Make the next ``count`` /v1/tts calls fail with ``status`` (fallback tests)."""
        with self._lock:
            self._failures.extend([status] * count)

    def break_next(self, count: int = 1) -> None:
        """Make the next ``count`` streamed /v1/tts answers drop the connection after the
        first audio chunk (a crashed or restarted server)."""
        with self._lock:
            self._breaks += count

    def tts_requests(self) -> list[dict[str, Any]]:
        """Recorded /v1/tts calls."""
        return self.requests.of_kind("tts")

    def duration_for(self, text: str) -> float:
        """Seconds of audio a text yields."""
        return max(0.2, len(text) * self.seconds_per_char)

    # ---- HTTP ------------------------------------------------------------------------------

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Route one request."""
        path = request.path.rstrip("/")
        try:
            if path == "/v1/health" and request.method in ("GET", "POST"):
                self.requests.append({"path": path, "body": None, "t": request.t, "kind": "health"})
                return HttpResponse.json({"status": "ok"})
            if path == "/v1/tts":
                self._require(request, "POST")
                return await self._tts(request, path)
            if path == "/v1/references/add":
                self._require(request, "POST")
                return self._add_reference(request, path)
            if path == "/v1/references/list":
                self._require(request, "GET")
                self.requests.append(
                    {"path": path, "body": None, "t": request.t, "kind": "references"}
                )
                return HttpResponse.json(
                    {
                        "success": True,
                        "reference_ids": sorted(self.references),
                        "message": "Success",
                    }
                )
            if path == "/v1/references/delete":
                self._require(request, "POST", "DELETE")
                body = self._decode_body(request)
                ref_id = str(body.get("reference_id", ""))
                self.requests.append(
                    {"path": path, "body": body, "t": request.t, "kind": "references"}
                )
                if self.references.pop(ref_id, None) is None:
                    raise _Reject(404, f"Reference ID '{ref_id}' not found")
                return HttpResponse.json(
                    {"success": True, "message": "Reference deleted", "reference_id": ref_id}
                )
            raise _Reject(404, f"Not found: {request.method} {request.path}")
        except _Reject as exc:
            return _fish_error(exc.status, exc.message)

    @staticmethod
    def _require(request: HttpRequest, *methods: str) -> None:
        if request.method not in methods:
            raise _Reject(405, f"Method {request.method} not allowed")

    def _decode_body(self, request: HttpRequest) -> dict[str, Any]:
        ctype = request.content_type
        if ctype == "application/msgpack":
            import ormsgpack  # installed with langgraph; fish-speech uses it

            body = ormsgpack.unpackb(request.body)
        elif ctype == "application/json":
            try:
                body = json.loads(request.body)
            except ValueError as exc:
                raise _Reject(400, f"Invalid JSON: {exc}") from exc
        elif ctype == "multipart/form-data":
            body = _multipart(request)
        else:
            raise _Reject(415, "Accept: application/msgpack, application/json, multipart/form-data")
        if not isinstance(body, dict):
            raise _Reject(422, "Body must be an object")
        return body

    def _add_reference(self, request: HttpRequest, path: str) -> HttpResponse:
        body = self._decode_body(request)
        ref_id, text = str(body.get("id", "")), str(body.get("text", ""))
        audio = _decode_audio_field(body.get("audio", b""))
        self.requests.append({"path": path, "body": body, "t": request.t, "kind": "references"})
        if not ref_id.strip() or not text.strip() or not audio:
            raise _Reject(400, "id, audio and text are required")
        self.references[ref_id] = {"audio": audio, "text": text}
        return HttpResponse.json(
            {"success": True, "message": f"Reference {ref_id} added", "reference_id": ref_id}
        )

    def _validate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply ServeTTSRequest's defaults and the checks a client could trip on."""
        if not isinstance(body.get("text"), str):
            raise _Reject(422, "text: field required (string)")
        req = {
            "chunk_length": 200,
            "format": "wav",
            "latency": "normal",
            "references": [],
            "reference_id": None,
            "seed": None,
            "use_memory_cache": "off",
            "normalize": True,
            "streaming": False,
            "max_new_tokens": 512,
            "top_p": 0.8,
            "repetition_penalty": 1.1,
            "temperature": 0.8,
            **body,
        }
        chunk_length = req["chunk_length"]
        if not isinstance(chunk_length, int) or not 100 <= chunk_length <= 1000:
            raise _Reject(422, "chunk_length: must be an integer in 100..1000")
        if req["format"] not in _FORMATS:
            raise _Reject(422, f"format: must be one of {_FORMATS}")
        refs = []
        for ref in req["references"] or []:
            if not isinstance(ref, dict) or "audio" not in ref or "text" not in ref:
                raise _Reject(422, "references: items need audio and text")
            refs.append({"audio": _decode_audio_field(ref["audio"]), "text": str(ref["text"])})
        req["references"] = refs
        if req["reference_id"] and req["reference_id"] not in self.references and not refs:
            # fish-speech answers 500 for an unknown reference id (its loader raises).
            raise _Reject(500, f"Reference ID {req['reference_id']} not found")
        return req

    async def _tts(self, request: HttpRequest, path: str) -> HttpResponse:
        record: dict[str, Any] = {
            "path": path,
            "body": None,
            "t": request.t,
            "kind": "tts",
            "content_type": request.content_type,
            "status": 200,
            "completed": False,
            "disconnected": False,
            "t_first_audio": None,
            "t_done": None,
        }
        self.requests.append(record)
        try:
            body = self._decode_body(request)
            record["body"] = body
            req = self._validate(body)
            record["body"] = req
            with self._lock:
                failure = self._failures.pop(0) if self._failures else None
            if failure:
                raise _Reject(failure, "Scripted failure")
            if req["streaming"] and req["format"] != "wav":
                raise _Reject(400, "Streaming only supports WAV format")
            if req["format"] == "opus":
                raise _Reject(400, "FakeFish does not encode opus")
        except _Reject as exc:
            record["status"] = exc.status
            record["t_done"] = time.monotonic()
            return _fish_error(exc.status, exc.message)

        cloned = bool(req["references"] or req["reference_id"])
        freq = 330.0 if cloned else 220.0
        pcm = sine_pcm16(self.duration_for(req["text"]), freq, self.sample_rate)
        record.update(freq=freq, samples=len(pcm) // 2)
        headers = {
            "content-type": _CONTENT_TYPES.get(req["format"], "application/octet-stream"),
            "content-disposition": f"attachment; filename=audio.{req['format']}",
        }
        if req["streaming"]:
            with self._lock:
                broken, self._breaks = self._breaks > 0, max(0, self._breaks - 1)
            return HttpResponse(headers=headers, stream=self._stream(record, pcm, broken))
        if self.first_chunk_ms > 0:
            await asyncio.sleep(self.first_chunk_ms / 1000)
        if req["format"] == "wav":
            data = wav_bytes(pcm, self.sample_rate)
        elif req["format"] == "mp3":
            data = await asyncio.to_thread(_mp3_bytes, pcm, self.sample_rate)
        else:
            data = pcm
        now = time.monotonic()
        record.update(completed=True, t_first_audio=now, t_done=now)
        return HttpResponse(headers=headers, body=data)

    async def _stream(
        self, record: dict[str, Any], pcm: bytes, broken: bool = False
    ) -> AsyncIterator[bytes]:
        step = max(2, int(self.sample_rate * self.stream_chunk_ms / 1000) * 2)
        try:
            yield wav_stream_header(self.sample_rate)
            for i, start in enumerate(range(0, len(pcm), step)):
                wait = self.first_chunk_ms if i == 0 else self.chunk_delay_ms
                if wait > 0:
                    await asyncio.sleep(wait / 1000)
                if i == 0:
                    record["t_first_audio"] = time.monotonic()
                yield pcm[start : start + step]
                if broken:
                    raise ConnectionAbortedError("scripted: the connection drops mid-answer")
            record["completed"] = True
        except (asyncio.CancelledError, GeneratorExit):
            record["disconnected"] = True
            raise
        finally:
            record["t_done"] = time.monotonic()


def _fish_error(status: int, message: str) -> HttpResponse:
    """An error as fish-speech's exception handler shapes it."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return HttpResponse.json({"statusCode": status, "message": message, "error": phrase}, status)
