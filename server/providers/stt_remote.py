"""Speech-to-text on its own (GPU) servers: any OpenAI-compatible
``POST /v1/audio/transcriptions`` endpoint (speaches / faster-whisper-server, vLLM's Whisper,
OpenAI). Same interface as ``WhisperSTT`` as the audio pipeline uses it.

Cost: every partial is one request carrying the utterance so far (16 kHz WAV, 32 KB per
second), so a 5 s utterance with partials every 700 ms uploads about 0.6 MB; a final is one
more request. ``max_concurrency`` bounds requests in flight per server process: a partial
that finds them all busy is skipped (``atry_transcribe`` returns None), as with the local
model's lock. Answers are asked as verbose_json; a server that refuses it (400 about
response_format: OpenAI's gpt-4o-transcribe models, vLLM) is asked for json instead."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
import structlog

from server.providers.stt_types import (
    SAMPLE_RATE,
    Segment,
    STTError,
    STTUnavailable,
    Transcript,
    clean_text,
)

log = structlog.get_logger(__name__)

# Whisper's language names (OpenAI's verbose_json says "english"); servers that answer with
# codes ("en") pass through.
LANGUAGE_CODES = {
    "english": "en",
    "korean": "ko",
    "japanese": "ja",
    "chinese": "zh",
    "german": "de",
    "french": "fr",
    "spanish": "es",
}


def wav_bytes(audio: np.ndarray) -> bytes:
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def shown_url(url: str) -> str:
    """The URL as errors show it: without a user, password, query or fragment (a proxy's
    credentials or a key may ride in them, and errors reach /health/details and clients)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number: show none of it
        return "STT_BASE_URL"
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


class RemoteSTT:
    """An OpenAI-compatible transcription endpoint."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        timeout_s: float = 30.0,
        max_concurrency: int = 4,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = shown_url(self.base_url)
        self.model = model
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self._in_flight = 0
        # told when the server starts or stops answering (None: answering; else why not),
        # so the server's status follows a box that was down at start-up and came back
        self.on_health: Callable[[str | None], None] | None = None
        self._healthy: bool | None = None
        # verbose_json (segments, language, log-probabilities) until the server refuses it:
        # OpenAI's gpt-4o(-mini)-transcribe and vLLM answer only json / text
        self.response_format = "verbose_json"

    @property
    def loaded(self) -> bool:
        """Always: there is nothing to load. Every request asks the server, so a server that
        was down at start-up is used as soon as it answers (its failures are errors)."""
        return True

    @property
    def busy(self) -> bool:
        return self._in_flight >= self.max_concurrency

    async def aload(self) -> None:
        """Check that the server answers at all (any HTTP status will do: some servers have
        no /models route); a refused connection or a timeout is an error with its cause."""
        try:
            await self._client.get("/models", timeout=min(5.0, self.timeout_s))
        except httpx.TimeoutException:
            self._health(
                why := f"the transcription server at {self.shown_url} did not answer within "
                f"{min(5.0, self.timeout_s):g} s (check STT_BASE_URL)"
            )
            raise STTUnavailable(why) from None
        except httpx.HTTPError as e:
            self._health(
                why := f"the transcription server at {self.shown_url} is unreachable "
                f"({type(e).__name__}; check STT_BASE_URL and that the server runs)"
            )
            raise STTUnavailable(why) from None
        self._health(None)

    async def atranscribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        partial: bool = False,
        beam_size: int | None = None,
        initial_prompt: str | None = None,
        word_timestamps: bool = False,
        window_s: float | None = None,  # local Whisper's encoder window: not ours to set
    ) -> Transcript:
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        duration_s = samples.size / SAMPLE_RATE
        if samples.size == 0:
            return Transcript("", language or "", [], 0.0, 0.0)
        wav = wav_bytes(samples)
        try:
            t = await self._transcribe(wav, language, initial_prompt, word_timestamps, duration_s)
        except STTError as e:
            self._health(str(e))
            raise
        self._health(None)
        return t

    async def _transcribe(
        self,
        wav: bytes,
        language: str | None,
        prompt: str | None,
        word_timestamps: bool,
        duration_s: float,
    ) -> Transcript:
        self._in_flight += 1
        started = time.perf_counter()
        try:
            r = await self._post(wav, language, prompt, word_timestamps)
            if r.status_code == 400 and self.response_format != "json" and _refuses_format(r):
                self.response_format = "json"  # remembered: one refused request per process
                log.info("stt_remote_json_only", model=self.model)
                r = await self._post(wav, language, prompt, word_timestamps)
        finally:
            self._in_flight -= 1
        elapsed = time.perf_counter() - started
        if r.status_code != 200:
            raise STTError(
                f"the transcription server answered HTTP {r.status_code}{_said(r)}"
                + FIX.get(r.status_code, "")
            )
        try:
            return _transcript(r.json(), language, duration_s, elapsed)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise STTError("the transcription server sent an invalid response") from None

    def _health(self, problem: str | None) -> None:
        """Tell ``on_health`` when the server starts or stops answering (not every call)."""
        healthy = problem is None
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if self.on_health is not None:
            self.on_health(problem)

    async def _post(
        self, wav: bytes, language: str | None, prompt: str | None, word_timestamps: bool
    ) -> httpx.Response:
        data: dict[str, Any] = {"model": self.model, "response_format": self.response_format}
        if language:
            data["language"] = language.split("-")[0].lower()
        if prompt:
            data["prompt"] = prompt
        if word_timestamps and self.response_format == "verbose_json":
            data["timestamp_granularities[]"] = "word"
        files = {"file": ("audio.wav", wav, "audio/wav")}
        try:
            return await self._client.post("/audio/transcriptions", data=data, files=files)
        except httpx.TimeoutException:
            raise STTError(
                f"the transcription server did not answer within {self.timeout_s:g} s"
            ) from None
        except httpx.HTTPError as e:
            raise STTError(
                f"the transcription server is unreachable ({type(e).__name__})"
            ) from None

    async def atry_transcribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        *,
        partial: bool = True,
        beam_size: int | None = None,
        initial_prompt: str | None = None,
        window_s: float | None = None,
        give_way: bool = False,
    ) -> Transcript | None:
        """A partial: skipped (None) when every request slot is taken (``give_way`` is
        for the local model's single lock; a server's slots run side by side)."""
        if self.busy:
            return None
        return await self.atranscribe(
            audio, language, partial=partial, initial_prompt=initial_prompt
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _transcript(
    body: dict[str, Any], language: str | None, duration_s: float, elapsed: float
) -> Transcript:
    """A json or verbose_json answer as our Transcript (verbose_json adds segments, the
    detected language and the log-probabilities the end-of-turn rules read)."""
    text = clean_text(str(body["text"]))
    raw = [s for s in body.get("segments") or [] if isinstance(s, dict)]
    segments = [
        Segment(float(s.get("start", 0.0)), float(s.get("end", 0.0)), clean_text(str(s["text"])))
        for s in raw
        if "text" in s
    ]
    lang = str(body.get("language") or language or "")
    logprobs = [float(s["avg_logprob"]) for s in raw if "avg_logprob" in s]
    no_speech = [float(s["no_speech_prob"]) for s in raw if "no_speech_prob" in s]
    return Transcript(
        text=text,
        language=LANGUAGE_CODES.get(lang.lower(), lang.lower()),
        segments=segments,
        duration_s=float(body.get("duration") or duration_s),
        elapsed_s=elapsed,
        avg_logprob=min(logprobs) if logprobs else None,
        no_speech_prob=max(no_speech) if no_speech else None,
    )


# what to check, for the statuses a setting causes
FIX = {
    401: " (check STT_API_KEY)",
    403: " (check STT_API_KEY)",
    404: " (check STT_BASE_URL, usually ending in /v1, and STT_REMOTE_MODEL)",
}


def _refuses_format(r: httpx.Response) -> bool:
    """A 400 about response_format (OpenAI: "response_format 'verbose_json' is not
    compatible with model ..."; vLLM: "Currently only support response_format `text` or
    `json`")."""
    return "response_format" in r.text


def _said(r: httpx.Response) -> str:
    """The server's own words about a failed request (OpenAI's error.message, FastAPI's
    detail, or the start of the body), for the error the session and /health show."""
    try:
        body = r.json()
    except ValueError:
        text = r.text.strip()
    else:
        err = body.get("error") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, dict):  # FastAPI servers nest OpenAI's error in detail
            err = detail.get("error", err)
        if err is None and isinstance(body, dict) and isinstance(body.get("message"), str):
            err = body  # vLLM's ErrorResponse: {"object": "error", "message": ..., "code": 404}
        text = str(err.get("message") if isinstance(err, dict) else err or detail or body)
    text = " ".join(text.split())[:200]
    return f": {text}" if text else ""
