from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server.config import Settings
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread
from tests.speech import whisper_base_dir


@pytest.fixture
def llm(fake_openai: FakeOpenAI) -> FakeOpenAI:
    """The fake model server, under the name the e2e tests use."""
    return fake_openai


def make_settings(tmp: Path, fake: FakeOpenAI | None, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp / "data",
        "log_level": "WARNING",
        "default_output_audio": "none",
        "stt_model": str(tmp / "no-stt-model"),
        # no speech recognition unless a test brings a model (a missing one fails /health)
        "stt_enabled": "stt_model" in over or "stt_provider" in over,
        # no face model download attempt unless a test brings the model file
        "face_enabled": "face_model_path" in over,
    }
    if fake is not None:
        base |= {
            "llm_base_url": fake.base_url,
            "llm_api_key": "test-key",
            "llm_model": "fake-model",
            "embed_dims": fake.dims,
            "llm_max_retries": 2,
        }
    return Settings(_env_file=None, **(base | over))  # type: ignore[call-arg]


@pytest.fixture
def server_factory(tmp_path: Path, llm: FakeOpenAI) -> Iterator[Callable[..., ServerThread]]:
    """Servers of one test, stopped at its end. It asks for `llm` so that the fake model
    server outlives them: a server still saving memories in the background would otherwise
    connect to a fake that is closing (CPython gh-109564, an unraisable-exception warning)."""
    started: list[ServerThread] = []

    def start(fake: FakeOpenAI | None, **over: Any) -> ServerThread:
        srv = ServerThread(make_settings(tmp_path / f"s{len(started)}", fake, **over)).start()
        started.append(srv)
        return srv

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def server(server_factory: Callable[..., ServerThread], llm: FakeOpenAI) -> ServerThread:
    return server_factory(llm)


@pytest.fixture(scope="module")
def whisper() -> Path:
    """The local Whisper base model folder (the voice tests' STT_MODEL)."""
    return whisper_base_dir()
