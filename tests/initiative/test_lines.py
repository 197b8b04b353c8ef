"""The approval question from the data files: per persona and language, a persona's own line
before the default, blanks for what a template names but nobody filled."""

from __future__ import annotations

import json
from pathlib import Path

from server.initiative.data import load

ROOT = Path(__file__).resolve().parents[2] / "personas" / "proactive"
FILL = {"description": "Set an alarm", "details": " (time: 07:00)", "name": "weather__set_alarm"}


def test_approval_question_per_persona_and_language() -> None:
    data = load(ROOT)
    en = data.line("emma", "en", "approval", **FILL)
    assert en == (
        "Before I do that, I need your okay: Set an alarm (time: 07:00). "
        "Shall I go ahead? Say yes or no."
    )
    ko = data.line("이서아", "ko", "approval", **FILL)
    assert ko.startswith("이거 하기 전에 물어볼게: Set an alarm (time: 07:00).")
    haru = data.line("haru", "ko", "approval", **FILL)  # haru's own line
    assert haru.startswith("잠깐, 이거 해도 돼? Set an alarm") and '"응, 해줘"' in haru
    # a language without lines falls back to English
    assert data.line("emma", "ja", "approval", **FILL) == en


def test_unfilled_placeholders_are_blank(tmp_path: Path) -> None:
    (tmp_path / "default.json").write_text(
        json.dumps({"lines": {"en": {"approval": "Do {description} for {who}?"}}})
    )
    data = load(tmp_path)
    assert data.line("x", "en", "approval", description="it") == "Do it for ?"
    assert data.line("x", "en", "missing") == "(missing)"
