"""Trigger prompts and schedules from data files: PROACTIVE_DIR/default.json (prompts per
language and trigger) and PROACTIVE_DIR/<persona id>.json (that persona's schedules and
prompt overrides). Read once at start; a broken file is an error with its reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.initiative.policy import check_cron


@dataclass(frozen=True)
class Schedule:
    id: str
    name: str
    cron: str


@dataclass
class ProactiveData:
    prompts: dict[str, dict[str, str]] = field(default_factory=dict)  # language -> trigger
    persona_prompts: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    schedules: dict[str, list[Schedule]] = field(default_factory=dict)  # persona id -> list
    # lines the persona says as they are (the approval question), language -> key
    lines: dict[str, dict[str, str]] = field(default_factory=dict)
    persona_lines: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def prompt(self, persona_id: str, language: str, trigger: str, **fill: str) -> str:
        """A trigger's prompt for the model (the persona's own, else the default)."""
        return _pick(self.prompts, self.persona_prompts, persona_id, language, trigger, fill)

    def line(self, persona_id: str, language: str, key: str, **fill: str) -> str:
        """A line the persona speaks verbatim, in its language."""
        return _pick(self.lines, self.persona_lines, persona_id, language, key, fill)


def _pick(
    default: dict[str, dict[str, str]],
    own: dict[str, dict[str, dict[str, str]]],
    persona_id: str,
    language: str,
    key: str,
    fill: dict[str, str],
) -> str:
    lang = language if language in default else "en"
    mine = own.get(persona_id, {}).get(lang, {})
    template = mine.get(key) or default.get(lang, {}).get(key) or f"({key})"
    values = {"name": "", "reason": "", "detail": ""} | fill
    return template.format_map(_Blank(values))


class _Blank(dict[str, str]):
    """A placeholder a template names but nobody filled stays empty, never a KeyError."""

    def __missing__(self, key: str) -> str:
        return ""


def _schedules(raw: Any, where: Path) -> list[Schedule]:
    out = []
    for s in raw or []:
        try:
            out.append(Schedule(str(s["id"]), str(s.get("name") or s["id"]), check_cron(s["cron"])))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: bad schedule {s!r}: {e}") from None
    return out


def load(folder: Path) -> ProactiveData:
    data = ProactiveData()
    if not folder.is_dir():
        return data
    for path in sorted(folder.glob("*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None
        prompts = {str(k): dict(v) for k, v in (raw.get("prompts") or {}).items()}
        lines = {str(k): dict(v) for k, v in (raw.get("lines") or {}).items()}
        if path.stem == "default":
            data.prompts, data.lines = prompts, lines
            data.schedules["*"] = _schedules(raw.get("schedules"), path)
        else:
            data.persona_prompts[path.stem] = prompts
            data.persona_lines[path.stem] = lines
            data.schedules[path.stem] = _schedules(raw.get("schedules"), path)
    return data
