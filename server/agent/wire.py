"""LangChain messages to the OpenAI chat format and back, for the lean stream path
(server/providers/chat_stream.py). Mirrors what langchain-openai sends for the message
kinds a persona turn has: system, user, assistant (with tool calls) and tool results."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.utils.json import parse_partial_json

from server.providers.chat_stream import ChatResult

Prompt = list[tuple[str, str] | BaseMessage]


def _call(c: dict[str, Any], raw: bool) -> dict[str, Any]:
    args = c.get("args") if raw else json.dumps(c["args"], ensure_ascii=False)
    return {
        "type": "function",
        "id": c.get("id"),
        "function": {"name": c.get("name"), "arguments": args},
    }


def to_openai(message: tuple[str, str] | BaseMessage) -> dict[str, Any]:
    if isinstance(message, tuple):
        role, content = message
        return {"role": {"human": "user", "ai": "assistant"}.get(role, role), "content": content}
    out: dict[str, Any] = {"content": message.content}
    if isinstance(message, ToolMessage):
        content = message.content if isinstance(message.content, str) else message.text
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
    if message.name is not None:
        out["name"] = message.name
    if isinstance(message, HumanMessage):
        out["role"] = "user"
    elif isinstance(message, AIMessage):
        out["role"] = "assistant"
        if message.tool_calls or message.invalid_tool_calls:
            out["tool_calls"] = [_call(c, False) for c in message.tool_calls] + [
                _call(c, True)
                for c in message.invalid_tool_calls  # type: ignore[arg-type]
            ]
            out["content"] = message.content or None
    elif isinstance(message, SystemMessage):
        out["role"] = "system"
    else:
        raise TypeError(f"no OpenAI role for {type(message).__name__}")
    return out


def to_ai_message(result: ChatResult) -> AIMessage:
    """The reply as langchain-openai streams it: arguments cut short are completed the
    way LangChain completes them (parse_partial_json); arguments that are not a JSON object
    make an invalid tool call (the tools node answers it with an error)."""
    calls, invalid = [], []
    for c in result.tool_calls:
        try:
            args = parse_partial_json(c.arguments) if c.arguments else {}
            error = None if isinstance(args, dict) else "arguments are not a JSON object"
        except ValueError as e:
            error = f"arguments are not valid JSON ({e})"
        if error is None:
            calls.append(tool_call(name=c.name, args=args, id=c.id))
        else:
            invalid.append(invalid_tool_call(name=c.name, args=c.arguments, id=c.id, error=error))
    usage = result.usage or {}
    meta: dict[str, Any] = {"finish_reason": result.finish_reason, "model_name": result.model}
    return AIMessage(
        result.content,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata={
            "input_tokens": usage.get("prompt_tokens", 0) or 0,
            "output_tokens": usage.get("completion_tokens", 0) or 0,
            "total_tokens": usage.get("total_tokens", 0) or 0,
        }
        if result.usage
        else None,
        response_metadata=meta,
    )
