"""System prompt built from the persona JSON, the intimacy level and what the turn knows."""

from __future__ import annotations

from typing import Any

from server.avatar.emotions import DEFAULT_MARKS, marks_prompt
from server.personas import Persona, SpeechStyle

TOOL_GUIDE = (
    "You can act with tools. Remember lasting facts the user tells you with add_memory. To "
    "correct or forget a memory, use its id from the list above or from search_memory "
    "first; forget only when the user asks. Set, list and cancel reminders with the "
    "schedule tools. Call get_screen_context when you need to see the user's screen. Call "
    "stay_silent alone when you should not answer. After a tool, answer the user briefly."
)
_LANG_NAMES = {"ko": "Korean (한국어)", "en": "English", "ja": "Japanese"}


def build_system_prompt(
    persona: Persona,
    style: SpeechStyle,
    *,
    memories: list[dict[str, Any]] | None = None,
    visual_context: str | None = None,
    affect: dict[str, Any] | None = None,
    instructions: str | None = None,
    instructions_mode: str = "append",
    tools: bool = False,
    now_iso: str | None = None,
) -> str:
    """The persona's prompt plus what the turn knows. Session instructions are added at the
    end ("append"), or stand in for the whole persona description ("replace": the user wrote
    their own character; what the turn knows is still given)."""
    if instructions and instructions_mode == "replace":
        lines = [instructions]
    else:
        lines = persona_lines(persona, style)
    if memories:  # with tools, ids too: the model may update or delete these (Read-then-Write)
        shown = (
            (f"- [{m['id']}] {m['memory']}" if tools else f"- {m['memory']}") for m in memories
        )
        lines.append("What you remember about the user:\n" + "\n".join(shown))
    if visual_context:
        lines.append(f"What is on the user's screen right now: {visual_context}")
    if affect:
        emo = affect.get("emotion")
        att = affect.get("attention")
        parts = [f"they look {emo}" if emo else "", f"attention {att}" if att else ""]
        lines.append("How the user seems (from the camera): " + ", ".join(p for p in parts if p))
    if tools:
        lines.append(TOOL_GUIDE + (f" Now: {now_iso}." if now_iso else ""))
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
        "with no lists or markdown."
    )
    lines.append(marks_prompt(persona.emotion_marks or DEFAULT_MARKS))
    return lines
