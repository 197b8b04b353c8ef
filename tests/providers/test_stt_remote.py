"""STT_PROVIDER=openai against a real transcription server on loopback (the local
faster-whisper base model behind OpenAI's /v1/audio/transcriptions): speech in, words out,
the way a remote GPU box would answer; and honest errors when it cannot."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from server.providers.stt import STTError, STTUnavailable
from server.providers.stt_remote import RemoteSTT
from tests.fakes import HttpRequest, HttpResponse, LoopbackServer
from tests.fakes.transcription_server import TranscriptionServer
from tests.speech import speak, whisper_base_dir, with_silence


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_remote_transcription_of_real_speech(transcriber: TranscriptionServer):
    stt = RemoteSTT(transcriber.base_url, "k", "whisper-1", timeout_s=60)
    try:
        await stt.aload()
        assert stt.loaded
        t = await stt.atranscribe(
            with_silence(speak("The quick brown fox jumps over the lazy dog."), 200, 200), "en"
        )
    finally:
        await stt.aclose()
    words = set(t.text.lower().replace(".", "").split())
    assert len(words & {"quick", "brown", "fox", "jumps", "lazy", "dog"}) >= 5, t.text
    assert t.language == "en" and t.segments and t.duration_s == pytest.approx(3.0, abs=1.5)
    [req] = [r for r in transcriber.requests if r["kind"] == "transcription"][-1:]
    assert req["body"] == {
        "model": "whisper-1",
        "response_format": "verbose_json",
        "language": "en",
    }


async def test_partials_are_skipped_when_every_slot_is_busy(transcriber: TranscriptionServer):
    stt = RemoteSTT(transcriber.base_url, None, "whisper-1", max_concurrency=1, timeout_s=60)
    try:
        final = asyncio.create_task(stt.atranscribe(speak("the quick brown fox"), "en"))
        await asyncio.sleep(0)  # the request is on its way: the only slot is taken
        assert stt.busy
        assert await stt.atry_transcribe(speak("hello"), "en") is None  # skipped, not queued
        assert "fox" in (await final).text.lower()
        assert not stt.busy
        assert await stt.atry_transcribe(speak("hello"), "en") is not None
    finally:
        await stt.aclose()


async def test_unreachable_and_failing_servers_say_so(tmp_path: Path):
    down = RemoteSTT(f"http://127.0.0.1:{closed_port()}/v1", None, "whisper-1", timeout_s=5)
    with pytest.raises(STTUnavailable, match="unreachable"):
        await down.aload()
    with pytest.raises(STTError, match="unreachable"):
        await down.atranscribe(speak("hello"), "en")
    await down.aclose()
    failing = TranscriptionServer(whisper_base_dir(), fail_status=503).start()
    stt = RemoteSTT(failing.base_url, None, "whisper-1")
    try:
        with pytest.raises(STTError, match="HTTP 503: scripted"):  # the server's own words
            await stt.atranscribe(speak("hello"), "en")
    finally:
        await stt.aclose()
        failing.stop()


async def test_a_server_that_answers_only_json_is_asked_for_json(
    transcriber: TranscriptionServer,
):
    """OpenAI's gpt-4o(-mini)-transcribe and vLLM's Whisper refuse verbose_json with a 400:
    the provider asks again for plain json, and keeps asking for json from then on."""
    transcriber.formats = ("json", "text")
    stt = RemoteSTT(transcriber.base_url, "k", "gpt-4o-mini-transcribe", timeout_s=60)
    before = len(transcriber.requests)
    try:
        first = await stt.atranscribe(speak("The quick brown fox jumps."), "en")
        second = await stt.atranscribe(
            speak("Over the lazy dog."), "en", word_timestamps=True, initial_prompt="fox"
        )
    finally:
        transcriber.formats = ("json", "text", "verbose_json")
        await stt.aclose()
    assert {"quick", "brown", "fox"} <= set(first.text.lower().replace(".", "").split())
    assert "dog" in second.text.lower()
    assert (first.segments, first.avg_logprob, first.language) == ([], None, "en")
    sent = [r["body"] for r in transcriber.requests[before:]]
    assert [b["response_format"] for b in sent] == ["verbose_json", "json", "json"]
    # json has no word timestamps: not asked for
    assert "timestamp_granularities[]" not in sent[-1] and sent[-1]["prompt"] == "fox"


async def test_errors_never_show_credentials_in_the_base_url():
    """STT_BASE_URL may carry a proxy's user and password (or a key in its query); errors go
    to /health/details (no auth), the server.status event and the speaker's error event,
    so they name the server by scheme, host, port and path only."""
    port = closed_port()
    url = f"http://gpu:s3cret-pw@127.0.0.1:{port}/v1?api-key=q-secret"
    down = RemoteSTT(url, "sk-live-key", "whisper-1", timeout_s=5)
    seen: list[str | None] = []
    down.on_health = seen.append
    try:
        with pytest.raises(STTUnavailable) as probe:
            await down.aload()
        with pytest.raises(STTError) as request:
            await down.atranscribe(speak("hello"), "en")
    finally:
        await down.aclose()
    for said in (str(probe.value), str(request.value), *map(str, seen)):
        assert "s3cret-pw" not in said and "q-secret" not in said and "sk-live" not in said
    assert f"http://127.0.0.1:{port}/v1" in str(probe.value)


class ScriptedServer(LoopbackServer):
    """A transcription endpoint that answers every upload the same way: how speaches,
    vLLM and OpenAI answer a request they refuse (a model, a key), or a broken server."""

    def __init__(self, status: int, body: bytes, delay_s: float = 0.0) -> None:
        super().__init__()
        self.status, self.body, self.delay_s = status, body, delay_s

    async def handle(self, request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(self.delay_s)
        return HttpResponse(self.status, {"content-type": "application/json"}, self.body)


def as_json(data: object) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (  # vLLM (and servers built on its protocol): the error at the top level
            404,
            as_json(
                {
                    "object": "error",
                    "message": "The model `whisper-x` does not exist.",
                    "type": "NotFoundError",
                    "param": None,
                    "code": 404,
                }
            ),
            "HTTP 404: The model `whisper-x` does not exist.",
        ),
        (  # speaches / faster-whisper-server (FastAPI's detail)
            404,
            as_json({"detail": "Model 'whisper-x' is not installed locally."}),
            "HTTP 404: Model 'whisper-x' is not installed locally.",
        ),
        (  # OpenAI
            401,
            as_json(
                {
                    "error": {
                        "message": "Incorrect API key provided: sk-ab***yz.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                }
            ),
            "HTTP 401: Incorrect API key provided: sk-ab***yz.",
        ),
        (500, b"<html>Internal Server Error</html>", "HTTP 500: <html>Internal Server Error"),
        (200, b"{not json", "an invalid response"),
        (200, as_json({"segments": []}), "an invalid response"),  # no text
    ],
)
async def test_a_refused_request_says_what_the_server_said(status: int, body: bytes, said: str):
    server = ScriptedServer(status, body).start()
    stt = RemoteSTT(f"{server.root_url}/v1", None, "whisper-x")
    problems: list[str | None] = []
    stt.on_health = problems.append
    try:
        with pytest.raises(STTError) as e:
            await stt.atranscribe(speak("hello"), "en")
    finally:
        await stt.aclose()
        server.stop()
    assert said in str(e.value)
    hint = {401: "check STT_API_KEY", 404: "STT_BASE_URL, usually ending in /v1, and STT_REMOTE"}
    assert hint.get(status, "") in str(e.value)  # what to change
    assert problems == [str(e.value)]  # the status follows: error, with the same words


async def test_a_slow_server_times_out_with_its_limit():
    server = ScriptedServer(200, as_json({"text": "late"}), delay_s=5).start()
    stt = RemoteSTT(f"{server.root_url}/v1", None, "whisper-1", timeout_s=0.5)
    try:
        with pytest.raises(STTError, match=r"did not answer within 0\.5 s"):
            await stt.atranscribe(speak("hello"), "en")
    finally:
        await stt.aclose()
        server.stop()
