"""The studio tells a newcomer what is wrong with the models, in words: a server whose Whisper
and face models are missing (offline) shows which model, why and the command that fixes it,
and never a raw exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.browser.conftest import OpenStudio
from tests.e2e.conftest import make_settings
from tests.server_harness import running_server

pytestmark = pytest.mark.browser


async def test_the_studio_shows_missing_models_and_their_fix(
    open_studio: OpenStudio, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path,
        None,
        stt_model="base",
        face_enabled=True,
        models_mirror_url="http://127.0.0.1:9/models",  # unreachable, as offline
    )
    with running_server(settings) as srv:
        s = await open_studio(srv, "newcomer", mic="silence")
        problems = await s.wait(
            "s.healthProblems.length >= 2 && s.healthProblems", what="model problems shown"
        )
        header = await s.page.text_content("#health")
        tooltip = await s.page.get_attribute("#health", "title")
    # In the interface language, no module ids or state codes (the reasons are on hover).
    assert header is not None and "Speech recognition (not working)" in header
    assert "Camera analysis (not working)" in header
    text = "\n".join(problems)
    assert "Whisper speech-to-text 'base' model unavailable" in text
    assert "`desktopmate models download stt`" in text
    assert "MediaPipe face landmarker model unavailable" in text
    assert "offline" in text
    assert tooltip == text
    assert "ConnectError" not in text and "Traceback" not in text
