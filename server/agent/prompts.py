"""System prompt built from the persona JSON, the intimacy level and what the turn knows."""

from __future__ import annotations

from typing import Any

from server.personas import Persona, SpeechStyle

_LANG_NAMES = {"ko": "Korean (한국어)", "en": "English", "ja": "Japanese"}


def build_system_prompt(
    persona: Persona,
    style: SpeechStyle,
    *,
    memories: list[str] | None = None,
    visual_context: str | None = None,
    affect: dict[str, Any] | None = None,
    instructions: str | None = None,
    instructions_mode: str = "append",
) -> str:
    """The persona's prompt plus what the turn knows. Session instructions are added at the
    end ("append"), or stand in for the whole persona description ("replace": the user wrote
    their own character; what the turn knows is still given)."""
    if instructions and instructions_mode == "replace":
        lines = [instructions]
    else:
        lines = persona_lines(persona, style)
    if memories:
        lines.append("What you remember about the user:\n" + "\n".join(f"- {m}" for m in memories))
    if visual_context:
        lines.append(f"What is on the user's screen right now: {visual_context}")
    if affect:
        emo = affect.get("emotion")
        att = affect.get("attention")
        parts = [f"they look {emo}" if emo else "", f"attention {att}" if att else ""]
        lines.append("How the user seems (from the camera): " + ", ".join(p for p in parts if p))
    if instructions and instructions_mode != "replace":
        lines.append(f"Extra instructions for this session: {instructions}")
    return "\n".join(lines)


def persona_lines(persona: Persona, style: SpeechStyle) -> list[str]:
    lang = _LANG_NAMES.get(persona.language.split("-")[0], persona.language)
    lines = [
        f"You are {persona.name}, a {persona.age}-year-old {persona.occupation} ({persona.mbti}).",
        f"Personality: {', '.join(persona.personality)}.",
        f"Hobbies: {', '.join(persona.hobbies)}. Likes: {', '.join(persona.likes)}. "
        f"Dislikes: {', '.join(persona.dislikes)}.",
    ]
    if persona.background:
        lines.append(f"Background: {persona.background}")
    lines += [
        f"Always reply in {lang}, as yourself, never as an AI assistant.",
        f"Relationship level {style.level} ({style.name}): {style.style}",
    ]
    if style.examples:
        lines.append("Examples of how you talk now: " + " / ".join(style.examples))
    lines.append(
        "This is a live spoken conversation: keep replies short (1-3 sentences), natural, "
        "with no lists, markdown or emoji."
    )
    return lines
