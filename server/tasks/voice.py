"""The persona's own words for a task preview: one short LLM call with the persona's
system prompt ("이제 '주문하기' 버튼을 누를게요, 괜찮아요?"), bounded in time; without an LLM,
or when it is slow or fails, the fixed line of views.preview_line in the persona's language."""

from __future__ import annotations

import asyncio
from typing import Any

from server.agent.prompts import build_system_prompt
from server.avatar.emotions import strip_marks
from server.logging import get_logger
from server.personas import Persona
from server.providers.llm import LazyChatModel
from server.tasks.views import preview_line

log = get_logger(__name__)
PHRASE_MARKER = "[task preview]"  # also lets test doubles recognise the call


def phrase_request(preview: dict[str, Any]) -> str:
    what = preview.get("description") or preview.get("target")
    ask = (
        "the last step, so ask clearly for a final go-ahead"
        if preview.get("final")
        else ("ask for a yes before you do it")
    )
    return (
        f"{PHRASE_MARKER} You are helping the user with a task on their screen. In one short "
        f"spoken sentence in your own voice, say you are about to {preview.get('action_type')} "
        f"'{preview.get('target')}' ({what}); this is {ask}. Only the sentence."
    )


async def phrase_preview(
    llm: LazyChatModel | None,
    persona: Persona,
    user_turns: int,
    preview: dict[str, Any],
    timeout_s: float,
) -> str:
    fallback = preview_line(persona.language, preview)
    if llm is None:
        return fallback
    system = build_system_prompt(persona, persona.style_for(user_turns))
    try:
        async with asyncio.timeout(timeout_s):
            reply = await llm.ainvoke([("system", system), ("human", phrase_request(preview))])
    except Exception as e:  # any LLM trouble: the fixed line still asks
        log.warning("task_preview_phrase_failed", error=type(e).__name__)
        return fallback
    content = reply.content
    said = strip_marks(content if isinstance(content, str) else reply.text, persona.emotion_marks)
    text = " ".join(said.split())
    return text if 0 < len(text) <= 300 else fallback
