"""Token accounting for the LLM calls of a turn, including the ones cut short.

An OpenAI-compatible server reports a streamed call's usage in its last chunk only
(``stream_options.include_usage``). A reply cut by barge-in or a cancel never gets that
chunk, yet its prompt was read and its tokens were generated. So every call is metered as
it happens: its output as the streamed chunks arrive (these servers send about one token
per chunk), its input estimated from the prompt's characters at this model's own ratio of
tokens to characters, learned from the calls that did report usage. When the usage chunk
arrives it replaces both estimates with the exact numbers. No tokenizer is needed (tiktoken
would download its vocabulary at run time, and the model's tokenizer is unknown anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOKENS_PER_CHAR = 0.25  # until this process saw a call report its usage


@dataclass
class TokenRatio:
    """Prompt tokens per prompt character of the model, from the calls that reported usage."""

    tokens: int = 0
    chars: int = 0

    def learn(self, chars: int, tokens: int) -> None:
        if chars > 0 and tokens > 0:
            self.tokens += tokens
            self.chars += chars

    def estimate(self, chars: int) -> int:
        rate = self.tokens / self.chars if self.chars else DEFAULT_TOKENS_PER_CHAR
        return round(chars * rate)


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """The characters of a prompt's text (content strings and text parts; tool call
    arguments as sent)."""
    n = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            n += len(content)
        elif isinstance(content, list):
            n += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
        for call in m.get("tool_calls") or []:
            n += len(json.dumps(call.get("function") or {}, ensure_ascii=False))
    return n


@dataclass
class CallUsage:
    input_tokens: int
    output_tokens: int = 0
    chars: int = 0
    exact: bool = False  # the server reported it; else estimated


@dataclass
class TurnMeter:
    """The LLM calls of one turn (a reply and its tool rounds), as they happen."""

    ratio: TokenRatio
    calls: list[CallUsage] = field(default_factory=list)

    def start(self, messages: list[dict[str, Any]]) -> CallUsage:
        chars = prompt_chars(messages)
        call = CallUsage(self.ratio.estimate(chars), chars=chars)
        self.calls.append(call)
        return call

    def reported(self, call: CallUsage, usage: dict[str, Any]) -> None:
        """The usage chunk arrived: exact numbers for this call (and a better ratio)."""
        call.input_tokens = int(usage.get("prompt_tokens") or 0)
        call.output_tokens = int(usage.get("completion_tokens") or 0)
        call.exact = True
        self.ratio.learn(call.chars, call.input_tokens)

    def totals(self) -> dict[str, int]:
        """Usage counters for the turn; ``estimated_tokens`` is the part not reported by the
        server (calls cut short, or a server that sends no usage)."""
        return {
            "llm_calls": len(self.calls),
            "input_tokens": sum(c.input_tokens for c in self.calls),
            "output_tokens": sum(c.output_tokens for c in self.calls),
            "estimated_tokens": sum(
                c.input_tokens + c.output_tokens for c in self.calls if not c.exact
            ),
        }
