"""A real OpenAI-compatible transcription server on loopback: ``POST /v1/audio/transcriptions``
(multipart WAV) answered by the local faster-whisper model, the way speaches or
faster-whisper-server answer it (``json``, ``text`` and ``verbose_json`` with segments).
It stands in for a remote GPU box in tests of ``STT_PROVIDER=openai``."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path

import numpy as np

from server.providers.stt import WhisperSTT
from tests.fakes import HttpRequest, HttpResponse, LoopbackServer
from tests.fakes.fish_server import _multipart


class TranscriptionServer(LoopbackServer):
    def __init__(
        self,
        model_dir: Path,
        *,
        fail_status: int | None = None,
        formats: tuple[str, ...] = ("json", "text", "verbose_json"),
    ) -> None:
        super().__init__()
        # the whole 30 s encoder window, as transcription servers (speaches, vLLM, OpenAI)
        # decode an upload, and faster-whisper's beam of 5: our own speed-ups are not theirs
        self.stt = WhisperSTT(
            str(model_dir), window_min_s=None, partial_window_min_s=None, final_beam_size=5
        )
        self.fail_status = fail_status
        # the response formats it answers: OpenAI's gpt-4o-transcribe and vLLM refuse
        # verbose_json with a 400, in these words
        self.formats = formats

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    async def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if request.method == "GET" and path == "/v1/models":
            return HttpResponse.json({"object": "list", "data": [{"id": "whisper-1"}]})
        if request.method != "POST" or path != "/v1/audio/transcriptions":
            return HttpResponse.json({"error": {"message": "not found"}}, status=404)
        form = _multipart(request)
        fields = {k: v for k, v in form.items() if k != "file"}
        self.requests.append(
            {"path": path, "body": fields, "t": request.t, "kind": "transcription"}
        )
        if self.fail_status:
            return HttpResponse.json({"error": {"message": "scripted"}}, status=self.fail_status)
        fmt = form.get("response_format", "json")
        if fmt not in self.formats:
            refusal = f"response_format '{fmt}' is not compatible with this model"
            error = {"message": refusal, "type": "invalid_request_error"}
            return HttpResponse.json({"error": error | {"param": "response_format"}}, status=400)
        with wave.open(io.BytesIO(form["file"])) as w:
            pcm = w.readframes(w.getnframes())
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        # greedy decoding: a GPU box answers a partial in tens of ms; on these 2 cores the
        # beam-5 decode would be slower than speech and every partial would come too late
        t = await asyncio.to_thread(self.stt.transcribe, audio, form.get("language"), partial=True)
        if fmt == "text":
            return HttpResponse(200, {"content-type": "text/plain"}, t.text.encode())
        body: dict[str, object] = {"text": t.text}
        if fmt == "verbose_json":
            body |= {
                "task": "transcribe",
                "language": t.language,
                "duration": t.duration_s,
                "segments": [
                    {"id": i, "start": s.start, "end": s.end, "text": s.text}
                    for i, s in enumerate(t.segments)
                ],
            }
        return HttpResponse.json(body)
