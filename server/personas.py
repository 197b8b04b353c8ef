"""Persona files: loaded and validated once at start; a broken file is reported and skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from server.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SpeechStyle:
    level: int
    name: str
    min_turns: int
    style: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Persona:
    id: str
    name: str
    language: str
    age: int
    mbti: str
    occupation: str
    description: str
    personality: tuple[str, ...]
    hobbies: tuple[str, ...]
    likes: tuple[str, ...]
    dislikes: tuple[str, ...]
    speech_styles: tuple[SpeechStyle, ...]
    tts_voice: str
    greeting: str
    background: str = ""
    # emotion -> the mark the persona writes for it (server/avatar/emotions.py)
    emotion_marks: dict[str, str] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def style_for(self, user_turns: int) -> SpeechStyle:
        """The highest speech style whose min_turns the user has reached."""
        reached = [s for s in self.speech_styles if user_turns >= s.min_turns]
        return max(reached, key=lambda s: s.min_turns) if reached else self.speech_styles[0]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "language": self.language,
            "description": self.description,
            "age": self.age,
            "mbti": self.mbti,
            "occupation": self.occupation,
            "voice": self.tts_voice,
        }


@dataclass(frozen=True)
class PersonaProblem:
    file: str
    field: str
    message: str


def _from_dict(d: dict[str, Any]) -> Persona:
    styles = tuple(
        SpeechStyle(
            level=s["level"],
            name=s["name"],
            min_turns=s["min_turns"],
            style=s["style"],
            examples=tuple(s.get("examples", [])),
        )
        for s in sorted(d["speech_styles"], key=lambda s: s["min_turns"])
    )
    return Persona(
        id=d["id"],
        name=d["name"],
        language=d["language"],
        age=d["age"],
        mbti=d["mbti"],
        occupation=d["occupation"],
        description=d["description"],
        personality=tuple(d["personality"]),
        hobbies=tuple(d["hobbies"]),
        likes=tuple(d["likes"]),
        dislikes=tuple(d["dislikes"]),
        speech_styles=styles,
        tts_voice=d["tts_voice"],
        greeting=d["greeting"],
        background=d.get("background", ""),
        emotion_marks=dict(d.get("emotion_marks") or {}),
        raw=d,
    )


class PersonaLibrary:
    """All valid personas in a folder, by id. Lookups never touch the file system, so an id
    cannot escape the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.personas: dict[str, Persona] = {}
        self.problems: list[PersonaProblem] = []

    def load(self) -> PersonaLibrary:
        schema = json.loads((self.folder / "schema.json").read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema)
        for path in sorted(self.folder.glob("*.json")):
            if path.name == "schema.json":
                continue
            problem = self._load_one(path, validator)
            if problem:
                self.problems.append(problem)
                log.warning(
                    "persona_invalid", file=problem.file, field=problem.field, error=problem.message
                )
        log.info("personas_loaded", count=len(self.personas), skipped=len(self.problems))
        return self

    def _load_one(self, path: Path, validator: jsonschema.Validator) -> PersonaProblem | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            return PersonaProblem(path.name, "(file)", f"not valid JSON: {e}")
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            return PersonaProblem(path.name, where, err.message)
        if data["id"] != path.stem:
            return PersonaProblem(path.name, "id", f"id {data['id']!r} must match the file name")
        if data["speech_styles"][0]["min_turns"] != 0 and all(
            s["min_turns"] != 0 for s in data["speech_styles"]
        ):
            return PersonaProblem(path.name, "speech_styles", "one style must start at min_turns 0")
        self.personas[data["id"]] = _from_dict(data)
        return None

    def get(self, persona_id: str) -> Persona | None:
        return self.personas.get(persona_id)

    def list(self) -> list[Persona]:
        return list(self.personas.values())
