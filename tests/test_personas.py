"""Persona files: validated at start; a broken file is reported by name and field, skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from server.config import ROOT
from server.personas import PersonaLibrary


def test_shipped_personas_are_all_valid():
    lib = PersonaLibrary(ROOT / "personas").load()
    assert lib.problems == []
    seoa = lib.get("이서아")
    assert seoa is not None and seoa.mbti == "ENFP" and seoa.age == 28 and seoa.language == "ko"
    assert len(lib.list()) >= 3 and any(p.language == "en" for p in lib.list())
    # speech style follows intimacy: formal first, casual later
    levels = [s.name for s in seoa.speech_styles]
    assert seoa.style_for(0).name == levels[0]
    assert seoa.style_for(10_000).name == levels[-1]
    assert seoa.style_for(0).min_turns < seoa.style_for(10_000).min_turns


def test_broken_files_are_reported_by_name_and_field_and_skipped(tmp_path: Path):
    src = ROOT / "personas"
    shutil.copy(src / "schema.json", tmp_path / "schema.json")
    shutil.copy(src / "emma.json", tmp_path / "emma.json")
    good = json.loads((src / "emma.json").read_text())
    (tmp_path / "bad_json.json").write_text("{ not json", encoding="utf-8")
    (tmp_path / "bad_age.json").write_text(
        json.dumps({**good, "id": "bad_age", "age": "old"}), encoding="utf-8"
    )
    (tmp_path / "missing.json").write_text(
        json.dumps({k: v for k, v in good.items() if k != "greeting"} | {"id": "missing"}),
        encoding="utf-8",
    )
    (tmp_path / "wrong_id.json").write_text(json.dumps(good), encoding="utf-8")  # id emma
    bad_style = {**good, "id": "bad_style"}
    bad_style["speech_styles"] = [{"level": 0, "name": "x", "style": "y"}]
    (tmp_path / "bad_style.json").write_text(json.dumps(bad_style), encoding="utf-8")

    lib = PersonaLibrary(tmp_path).load()
    assert [p.id for p in lib.list()] == ["emma"]
    problems = {p.file: p for p in lib.problems}
    assert set(problems) == {
        "bad_json.json",
        "bad_age.json",
        "missing.json",
        "wrong_id.json",
        "bad_style.json",
    }
    assert problems["bad_json.json"].field == "(file)"
    assert problems["bad_age.json"].field == "age"
    assert "greeting" in problems["missing.json"].message
    assert problems["wrong_id.json"].field == "id"
    assert problems["bad_style.json"].field.startswith("speech_styles")
    assert "min_turns" in problems["bad_style.json"].message


def test_lookups_cannot_escape_the_folder():
    lib = PersonaLibrary(ROOT / "personas").load()
    for pid in ("../pyproject", "..", "schema", "/etc/passwd", "emma.json", ""):
        assert lib.get(pid) is None
