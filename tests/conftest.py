"""Shared pytest fixtures. Each block below belongs to one area; keep them delimited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.fish_server import FakeFish
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.transcription_server import TranscriptionServer
from tests.speech import whisper_base_dir

# ---- fakes: loopback model-service doubles (tests/fakes) -------------------------------------


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started FakeOpenAI (64-dim embeddings, no delays); stopped after the test."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_fish() -> Iterator[FakeFish]:
    """A started FakeFish (44.1 kHz sine-tone WAVs, no delays); stopped after the test."""
    with FakeFish() as fake:
        yield fake


@pytest.fixture(scope="module")
def transcriber() -> Iterator[TranscriptionServer]:
    """A real OpenAI-compatible transcription server (local Whisper base) on loopback."""
    server = TranscriptionServer(whisper_base_dir()).start()
    try:
        yield server
    finally:
        server.stop()


# ---- end fakes -------------------------------------------------------------------------------
