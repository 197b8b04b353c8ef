"""One real server for the turn-taking tests (Whisper base, Silero VAD, Smart Turn, espeak
TTS, the fake LLM), shared by the package: loading the models is the expensive part."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, running_server
from tests.speech import whisper_base_dir


@pytest.fixture(scope="package")
def turn_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="package")
def turn_server(
    tmp_path_factory: pytest.TempPathFactory, turn_llm: FakeOpenAI
) -> Iterator[ServerThread]:
    settings = make_settings(
        tmp_path_factory.mktemp("turns"),
        turn_llm,
        stt_model=str(whisper_base_dir()),
        tts_provider="espeak",
        default_output_audio="pcm16",
        memory_enabled=True,  # preemptive starts must never reach mem0 (fake embeddings)
        log_level="INFO",
        log_pii=True,
    )
    with running_server(settings) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh_llm(turn_llm: FakeOpenAI) -> None:
    """Each test starts with no scripted replies left by the one before (a test that failed
    before its queued reply was asked for would hand it to the next test's first turn)."""
    turn_llm.clear()


@pytest.fixture
async def stt_ready(turn_server: ServerThread) -> ServerThread:
    """The server once Whisper and the end-of-turn model are loaded."""
    await turn_server.call(turn_server.services.load_turn_model())
    for _ in range(600):
        services = turn_server.services
        if services.modules.get("stt") == "ready" and services.turn_model is not None:
            return turn_server
        await asyncio.sleep(0.1)
    raise TimeoutError("STT did not load")
