"""Service URLs a deployment sets for issue 16 (STT_BASE_URL for a transcription server,
MEMORY_QDRANT_URL for a shared Qdrant): a value that cannot be an HTTP(S) URL is a bad
setting at start-up (exit 2, named, its value never echoed), not an "unreachable" server
found only when the first user speaks or the memory module quietly fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.config import Settings
from server.startup import EXIT_CONFIG

ROOT = Path(__file__).resolve().parent.parent
BAD = [
    "gpu-box:8000/v1",  # no scheme
    "ftp://127.0.0.1/v1",
    "http://",  # no host
    "http://127.0.0.1:99999/v1",  # no such port
    "http://[bad/v1",
    "file:///srv/qdrant",
]
GOOD = ["http://gpu-box:8000/v1", "https://api.openai.com/v1", "http://[::1]:6333", "HTTP://q"]


def settings(**over: object) -> Settings:
    return Settings(_env_file=None, **over)  # type: ignore[call-arg]


@pytest.mark.parametrize("field", ["stt_base_url", "memory_qdrant_url"])
@pytest.mark.parametrize("value", BAD)
def test_a_url_that_is_not_http_is_refused(field: str, value: str):
    with pytest.raises(ValidationError) as e:
        settings(**{field: value})
    [err] = e.value.errors()
    assert err["loc"] == (field,)
    assert "http://" in err["msg"]
    assert value not in err["msg"] or value == "http://"  # never echoed ("http://" is advice)


@pytest.mark.parametrize("field", ["stt_base_url", "memory_qdrant_url"])
@pytest.mark.parametrize("value", GOOD)
def test_http_urls_are_kept_as_given(field: str, value: str):
    assert getattr(settings(**{field: value}), field) == value


def test_unset_stays_unset():
    s = settings()
    assert s.stt_base_url is None and s.memory_qdrant_url == ""


def test_serve_names_a_bad_transcription_url(tmp_path: Path):
    """The real command line: exit 2 before anything is created, the setting named, the
    value (a proxy password in it) not echoed."""
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env=os.environ
        | {"PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path / "data")}
        | {"STT_PROVIDER": "openai", "STT_BASE_URL": "gpu:hunter2@gpu-box:8000/v1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "STT_BASE_URL: " in proc.stderr and "http://" in proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_serve_refuses_remote_speech_recognition_without_its_url(tmp_path: Path):
    """STT_PROVIDER=openai with no STT_BASE_URL is a missing setting (exit 2, named), not a
    server that starts and fails every utterance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env=env
        | {"PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path / "data")}
        | {"STT_PROVIDER": "openai"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "STT_BASE_URL" in proc.stderr and "STT_PROVIDER=openai" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()
