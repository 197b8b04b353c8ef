"""Vision-language model client for screen description and structured screen analysis.

Talks to any OpenAI-compatible chat endpoint that accepts image parts (OpenAI, vLLM serving
Qwen-VL, Ollama...). Every failure, from the network to a malformed JSON answer, surfaces as
`VisionError` so the vision pipeline can log it and carry on without a description.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Self

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from server.providers.failures import invalid_response, never_connected

DEFAULT_DESCRIBE_PROMPT = (
    "Describe what is on this screen in two or three sentences: which application or page "
    "is open, what the user appears to be doing, and any notable content. Be factual."
)
ANALYZE_SYSTEM_PROMPT = (
    "You analyse a screenshot for a desktop assistant. Report what is on the screen, the "
    "actionable UI elements with pixel coordinates of their centre (origin at the top-left "
    "of the image, in the image's own pixels), and the single most helpful next action. "
    "Answer only with JSON that matches the given schema."
)


class VisionError(RuntimeError):
    """The vision endpoint failed or answered something unusable."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- output models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Coordinates(_Strict):
    """Pixel position of an element's centre in the analysed image."""

    x: int
    y: int

    @field_validator("x", "y", mode="before")
    @classmethod
    def _round(cls, v: Any) -> Any:
        return round(v) if isinstance(v, float) else v


class Action(_Strict):
    """One thing the user could do on the current screen."""

    type: str = Field(description="click, double_click, type, scroll, key, drag or open")
    element: str = Field(description="the UI element, e.g. 'Send button'")
    coordinates: Coordinates
    confidence: float = Field(description="0 to 1")

    @field_validator("confidence")
    @classmethod
    def _clamp(cls, v: float) -> float:
        return min(1.0, max(0.0, v))


class RecommendedAction(_Strict):
    """The single most helpful next step."""

    type: str = Field(description="click, type, scroll, key, wait or none")
    target: str = Field(description="the element or text the action applies to")
    reasoning: str = Field(description="one sentence on why")


class ScreenAnalysis(_Strict):
    """Structured reading of a screenshot."""

    current_screen: str = Field(description="what the screen shows, one or two sentences")
    available_actions: list[Action]
    recommended_action: RecommendedAction


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A self-contained schema for OpenAI strict structured output.

    Strict mode wants every object closed (additionalProperties false) with all properties
    required; refs are inlined because some OpenAI-compatible servers handle $defs poorly.
    """
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})

    def fix(node: Any) -> Any:
        if isinstance(node, list):
            return [fix(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
            return fix({**target, **{k: v for k, v in node.items() if k != "$ref"}})
        out = {k: fix(v) for k, v in node.items() if k not in ("title", "default")}
        if out.get("type") == "object" or "properties" in out:
            out["additionalProperties"] = False
            out["required"] = list(out.get("properties", {}))
        return out

    return fix(raw)


@dataclass
class VisionUsage:
    """Running counters for the usage endpoint."""

    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


# --------------------------------------------------------------------------- client


class VisionClient:
    """Async client for an OpenAI-compatible vision chat endpoint.

    The SDK retries connection errors, timeouts, 429 and 5xx `max_retries` times with
    exponential backoff (it honours retry-after headers).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float = 30,
        max_tokens: int = 300,
        *,
        analysis_max_tokens: int = 1200,
        max_retries: int = 3,
        temperature: float = 0.2,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.analysis_max_tokens = analysis_max_tokens
        self.temperature = temperature
        self.usage = VisionUsage()
        self.last_latency_ms: float | None = None
        self._api_key = api_key or "not-needed"
        self._max_retries = max_retries
        self._sdk: AsyncOpenAI | None = None

    @property
    def _client(self) -> AsyncOpenAI:
        """The SDK client, made at the first call: its TLS context (the CA bundle, about
        50 ms of CPU) is not paid by a server start whose sessions never look at a screen."""
        if self._sdk is None:
            self._sdk = AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key,
                timeout=self.timeout_s,
                max_retries=self._max_retries,
            )
        return self._sdk

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool (if a call opened one)."""
        if self._sdk is not None:
            await self._sdk.close()

    async def get_visual_description(self, image: bytes, prompt: str | None = None) -> str:
        """A short plain-text description of an image (JPEG, PNG or WebP bytes)."""
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt or DEFAULT_DESCRIBE_PROMPT},
                    {"type": "image_url", "image_url": {"url": image_data_url(image)}},
                ],
            }
        ]
        text, finish = await self._complete(messages, max_tokens=self.max_tokens)
        text = text.strip()
        if not text:
            raise VisionError(f"vision model returned an empty description (finish={finish})")
        return text

    async def analyze_screen(self, image: bytes, context: str | None = None) -> ScreenAnalysis:
        """Structured analysis (screen summary, actions, recommendation) via json_schema."""
        question = "Analyse this screenshot."
        if context:
            question += f"\nContext from the conversation: {context}"
        text = await self.structured_answer(
            image, ANALYZE_SYSTEM_PROMPT, question, ScreenAnalysis, "screen_analysis"
        )
        return parse_screen_analysis(text)

    async def structured_answer(
        self, image: bytes, system: str, question: str, model: type[BaseModel], name: str
    ) -> str:
        """The raw JSON text of an answer constrained to ``model``'s strict schema; the caller
        validates it (the task planner retries a malformed one)."""
        messages = [
            {"role": "system", "content": system},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": question},
                    {"type": "image_url", "image_url": {"url": image_data_url(image)}},
                ],
            },
        ]
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": name, "strict": True, "schema": strict_json_schema(model)},
        }
        text, finish = await self._complete(
            messages, max_tokens=self.analysis_max_tokens, response_format=response_format
        )
        if finish == "length":
            raise VisionError(
                f"{name} was cut off at {self.analysis_max_tokens} tokens "
                "(raise analysis_max_tokens)"
            )
        return text

    async def _complete(
        self, messages: list[dict[str, Any]], *, max_tokens: int, **extra: Any
    ) -> tuple[str, str | None]:
        """One chat completion; returns (content, finish_reason), errors as VisionError."""
        start = time.perf_counter()
        self.usage.calls += 1
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=self.temperature,
                **extra,
            )
        except openai.APITimeoutError as exc:
            self.usage.errors += 1
            raise VisionError(f"vision endpoint timed out after {self.timeout_s:g} s") from exc
        except openai.APIConnectionError as exc:
            self.usage.errors += 1
            if never_connected(exc):
                raise VisionError(f"cannot reach vision endpoint {self.base_url}: {exc}") from exc
            raise VisionError("vision endpoint broke the connection before answering") from exc
        except openai.APIStatusError as exc:
            self.usage.errors += 1
            raise VisionError(
                f"vision endpoint returned HTTP {exc.status_code}: {_api_message(exc)}",
                status=exc.status_code,
            ) from exc
        except openai.APIError as exc:
            self.usage.errors += 1
            raise VisionError(f"vision endpoint error: {exc}") from exc
        except ValueError as exc:  # a body that is not the OpenAI format
            if not invalid_response(exc):
                raise
            self.usage.errors += 1
            raise VisionError("vision endpoint sent an invalid response (not JSON)") from exc
        finally:
            self.last_latency_ms = (time.perf_counter() - start) * 1000
        if response.usage is not None:
            self.usage.prompt_tokens += response.usage.prompt_tokens or 0
            self.usage.completion_tokens += response.usage.completion_tokens or 0
        if not response.choices:
            raise VisionError("vision endpoint returned no choices")
        choice = response.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise VisionError(f"vision model refused: {refusal}")
        return choice.message.content or "", choice.finish_reason


# --------------------------------------------------------------------------- helpers

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def parse_screen_analysis(text: str) -> ScreenAnalysis:
    """Validate a model's JSON answer; tolerates a ```json fence from lax servers."""
    return parse_json_answer(text, ScreenAnalysis, "screen analysis")


def parse_json_answer[M: BaseModel](text: str, model: type[M], what: str) -> M:
    """A model's JSON answer validated against ``model``; errors name the first problem."""
    raw = (text or "").strip()
    if not raw:
        raise VisionError(f"vision model returned an empty answer for {what}")
    fenced = _FENCE.match(raw)
    if fenced:
        raw = fenced.group(1)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise VisionError(
            f"{what} is not valid JSON ({exc.msg} at char {exc.pos}): {_snippet(raw)}"
        ) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise VisionError(
            f"{what} does not match the schema: {where}: {first['msg']} "
            f"({exc.error_count()} error(s)): {_snippet(raw)}"
        ) from exc


def image_data_url(image: bytes) -> str:
    """base64 data URL with the MIME type sniffed from the bytes (JPEG, PNG or WebP)."""
    if not image:
        raise VisionError("no image data")
    head = bytes(image[:12])
    if head.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        mime = "image/webp"
    else:
        raise VisionError(f"image is not JPEG, PNG or WebP (starts with {head[:4].hex()})")
    return f"data:{mime};base64,{base64.b64encode(bytes(image)).decode('ascii')}"


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return exc.message


def _snippet(text: str, n: int = 120) -> str:
    return repr(text[:n] + ("..." if len(text) > n else ""))
