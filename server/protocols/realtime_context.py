"""System and assistant message items (OpenAI Realtime ``conversation.item.create``) as
a client seeds context with them (Pipecat's LLMMessagesAppendFrame sends them with
``input_text`` parts), and ``conversation.item.delete``. The session core stores them
(server/hub/context_items.py); this is the Realtime half."""

from __future__ import annotations

from typing import Any

from server.hub.protocol import ProtocolError

# the parts a system message (input_text) or an assistant message (output_text,
# output_audio with its transcript; input_text as Pipecat sends it) carries text in
TEXT_FIELDS = {"input_text": "text", "text": "text", "output_text": "text"}


def context_text(role: str, content: Any, limit: int) -> str:
    """The item's text (its parts joined by newlines), checked."""
    if not isinstance(content, list) or not content:
        raise ProtocolError("invalid_request_error", "A message needs content parts.")
    texts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        field = "transcript" if kind == "output_audio" and role == "assistant" else None
        field = field or TEXT_FIELDS.get(kind or "")
        if field is None or not isinstance(part.get(field), str):
            raise ProtocolError(
                "unsupported_event",
                f"A {role} message's parts are text (input_text, output_text) or, for an "
                "assistant, output_audio with a transcript.",
            )
        texts.append(part[field])
    text = "\n".join(t for t in texts if t.strip())
    if not text:
        raise ProtocolError("invalid_request_error", f"The {role} message has no text.")
    if len(text) > limit:
        raise ProtocolError("message_too_large", f"A message is limited to {limit} characters.")
    return text
