"""A fake OpenAI-compatible server (chat, streaming, tool calls, vision, embeddings, mem0).

It speaks the real wire format so the real clients (openai SDK, langchain-openai, mem0) run
unchanged against ``FakeOpenAI().base_url``. Replies are scriptable per call; unscripted calls
get deterministic answers so tests can assert exact text.

mem0's own LLM calls are recognised by the prompts mem0 sends (see ``classify_mem0``) and get
memory JSON built from the user's sentences, on a queue separate from the chat replies, so a
test scripting the persona's reply is not disturbed by mem0 writing memories in between.

Run standalone for benchmarks: ``python -m tests.fakes.openai_server --ttft-ms 200``.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import base64
import hashlib
import itertools
import json
import math
import re
import signal
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tests.fakes import HttpRequest, HttpResponse, LoopbackServer

__all__ = ["FakeOpenAI", "Reply", "classify_mem0", "hashed_embedding", "tokenize"]

# Markers taken from the prompts mem0 2.2 sends (mem0/configs/prompts.py, memory/utils.py,
# reranker/llm_reranker.py). test_fakes.py checks them against the installed mem0.
MEM0_EXTRACT_MARKER = "You are a Memory Extractor"
MEM0_EXTRACT_SECTIONS = ("## Existing Memories", "## New Messages")
MEM0_FACTS_MARKERS = ("Personal Information Organizer", "Assistant Information Organizer")
MEM0_UPDATE_MARKER = "You are a smart memory manager which controls the memory of a system"
MEM0_PROCEDURAL_MARKER = "You are a memory summarization system"
MEM0_VISION_MARKER = "A user is providing an image. Provide a high level description"
MEM0_RERANK_MARKER = "You are a relevance scoring assistant"

VLLM_NO_TOOLS = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)
_WORDS = re.compile(r"\w+", re.UNICODE)
_TOKEN = re.compile(r"\S+\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
_BENCH_WORDS = (
    "the quick brown fox jumps over a lazy dog while seven happy otters sing softly "
    "near the quiet river and bright lanterns glow"
).split()


def tokenize(text: str) -> list[str]:
    """Split a reply into stream tokens (a word plus its trailing space); joins back exactly."""
    tokens = _TOKEN.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    if lead:
        if tokens:
            tokens[0] = lead + tokens[0]
        else:
            tokens = [lead]
    return tokens


def count_words(text: str) -> int:
    """A stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())


def hashed_embedding(text: str, dims: int) -> list[float]:
    """Deterministic hashed bag of words (signed), L2-normalised.

    Texts sharing words get a positive cosine similarity, which is all a memory-search test
    needs. Empty text maps to a fixed unit vector rather than zeros (zeros break cosine).
    """
    vec = np.zeros(dims, dtype=np.float64)
    for word in _WORDS.findall(text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vec[h % dims] += 1.0 if (h >> 63) & 1 == 0 else -1.0
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        vec[0], norm = 1.0, 1.0
    return (vec / norm).tolist()


def _cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(np.asarray(a), np.asarray(b)))


def _text_of(content: Any) -> str:
    """The text of a message content (a string, or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _images_of(content: Any) -> list[str]:
    """Image URLs (often data: URLs) in a message content."""
    out: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                out.append(image.get("url", "") if isinstance(image, dict) else str(image))
    return out


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def classify_mem0(messages: list[dict[str, Any]]) -> str | None:
    """Which mem0 call this is, from the prompts mem0 sends; None for any other chat call.

    ``extract`` is mem0 2.2's single ADD-extraction call (``add``); ``facts`` and ``update``
    are the pre-2.x two-step prompts; ``procedural``, ``vision`` and ``rerank`` are the
    procedural-memory summary, image description and LLM reranker calls.
    """
    system = " ".join(_text_of(m.get("content")) for m in messages if m.get("role") == "system")
    users = [_text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    user = " ".join(users)
    if MEM0_EXTRACT_MARKER in system or all(s in user for s in MEM0_EXTRACT_SECTIONS):
        return "extract"
    if MEM0_UPDATE_MARKER in system or MEM0_UPDATE_MARKER in user:
        return "update"
    if any(m in system for m in MEM0_FACTS_MARKERS) and user.lstrip().startswith("Input:"):
        return "facts"
    if MEM0_PROCEDURAL_MARKER in system:
        return "procedural"
    if MEM0_RERANK_MARKER in system:
        return "rerank"
    if any(MEM0_VISION_MARKER in u for u in users):
        return "vision"
    return None


def _new_message_lines(block: str) -> list[tuple[str, str]]:
    """Parse mem0's ``role: content`` transcript (parse_messages output) into (role, text)."""
    out: list[tuple[str, str]] = []
    for line in block.splitlines():
        m = re.match(r"^(user|assistant|system): ?(.*)$", line)
        if m:
            out.append((m.group(1), m.group(2)))
        elif out and line.strip():
            role, text = out[-1]
            out[-1] = (role, f"{text} {line.strip()}")
    return out


def _section(text: str, title: str) -> str:
    """The body of a ``## Title`` section of mem0's extraction prompt."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |^# Output:|\Z)", text, re.S | re.M)
    return m.group(1).strip() if m else ""


def _user_facts(transcript: list[tuple[str, str]], known: set[str]) -> list[str]:
    """The user's declarative sentences, minus questions and memories mem0 already holds."""
    facts: list[str] = []
    for role, text in transcript:
        if role != "user":
            continue
        for sentence in _sentences(text):
            if sentence.endswith(("?", "？")) or sentence in known or sentence in facts:
                continue
            facts.append(sentence)
    return facts


def mem0_default_reply(kind: str, messages: list[dict[str, Any]]) -> str:
    """A plausible deterministic answer to each mem0 call shape."""
    user = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "user")
    if kind == "extract":
        existing_raw = _section(user, "Existing Memories") or "[]"
        try:
            existing = {str(m.get("text", "")) for m in json.loads(existing_raw)}
        except (ValueError, AttributeError):
            existing = set()
        facts = _user_facts(_new_message_lines(_section(user, "New Messages")), existing)
        memory = [
            {"id": str(i), "text": f, "attributed_to": "user", "linked_memory_ids": []}
            for i, f in enumerate(facts)
        ]
        return json.dumps({"memory": memory}, ensure_ascii=False)
    if kind == "facts":
        body = user.split("Input:", 1)[-1]
        lines = _new_message_lines(body) or [("user", body)]
        return json.dumps({"facts": _user_facts(lines, set())}, ensure_ascii=False)
    if kind == "update":
        blocks = re.findall(r"```\s*\n?(.*?)\n?\s*```", user, re.S)
        old: list[dict[str, Any]] = []
        new: list[str] = []
        if len(blocks) >= 2:
            old_raw, facts_raw = blocks[-2], blocks[-1]
            try:
                parsed = ast.literal_eval(old_raw.strip())
                old = [dict(m) for m in parsed] if isinstance(parsed, list) else []
            except (ValueError, SyntaxError):
                old = []
        else:
            facts_raw = blocks[-1] if blocks else "[]"
        try:
            loaded = json.loads(facts_raw)
            new = [
                str(f) for f in (loaded.get("facts", []) if isinstance(loaded, dict) else loaded)
            ]
        except ValueError:
            new = [s for s in _sentences(facts_raw) if s]
        known = {str(m.get("text", "")) for m in old}
        memory = [{"id": str(m.get("id")), "text": m.get("text"), "event": "NONE"} for m in old]
        next_id = itertools.count(len(old))
        memory += [
            {"id": str(next(next_id)), "text": f, "event": "ADD"} for f in new if f not in known
        ]
        return json.dumps({"memory": memory}, ensure_ascii=False)
    if kind == "procedural":
        return f"Summary of {len(messages)} messages: {user.strip()[:200]}"
    if kind == "rerank":
        m = re.search(r"Query: (.*?)\n\nDocument: (.*)", user, re.S)
        if not m:
            return "0.5"
        score = _cosine(hashed_embedding(m.group(1), 256), hashed_embedding(m.group(2), 256))
        return f"{max(0.0, min(1.0, score)):.2f}"
    if kind == "vision":
        return "An image shown to the assistant."
    raise ValueError(kind)


def _schema_instance(schema: Any, root: dict[str, Any], text: str, depth: int = 0) -> Any:
    """A minimal value that validates against a JSON schema (strings filled with ``text``)."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        target = root.get("$defs", {}).get(ref) or root.get("definitions", {}).get(ref)
        return _schema_instance(target, root, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _schema_instance(schema[key][0], root, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: _schema_instance(v, root, text, depth + 1) for k, v in props.items()}
    if kind == "array":
        return []
    if kind == "string":
        return text
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    return None


# Faults a real endpoint shows (``queue_reply(fault=...)``), after ``fault_after`` tokens:
# "hang_headers": accepts the request and never sends a byte (not even headers);
# "hang": streams the first tokens, then sends nothing more (connection kept open);
# "break": streams the first tokens, then closes the connection mid-body;
# "garbage": streams the first tokens, then an SSE event whose data is not JSON.
FAULTS = ("hang_headers", "hang", "break", "garbage")


class _BrokenStream(Exception):
    """Raised inside a streamed body: the server drops the connection mid-body."""


@dataclass
class Reply:
    """One scripted chat reply. ``tokens`` wins over ``text``; ``fail_status`` sends an error."""

    text: str | None = None
    tokens: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    fail_status: int | None = None
    ttft_ms: float | None = None
    token_ms: float | None = None
    fault: str | None = None
    fault_after: int = 0

    def token_list(self) -> list[str]:
        """The content tokens to send."""
        if self.tokens is not None:
            return list(self.tokens)
        return tokenize(self.text or "")


def _normalise_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accept ``{"name", "arguments"}`` or OpenAI's shape; emit OpenAI's shape."""
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function", call)
        args = fn.get("arguments", {})
        out.append(
            {
                "id": call.get("id") or f"call_fake_{i}",
                "type": "function",
                "function": {
                    "name": fn["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    return out


class FakeOpenAI(LoopbackServer):
    """A loopback OpenAI-compatible server.

    ``ttft_ms`` is slept before the first content (or tool-call) token, ``token_ms`` between
    tokens; non-streaming calls sleep the same total. Both may be changed at any time.
    """

    def __init__(
        self,
        ttft_ms: float = 0,
        token_ms: float = 0,
        *,
        dims: int = 64,
        model: str = "fake-model",
    ) -> None:
        super().__init__()
        self.ttft_ms = ttft_ms
        self.token_ms = token_ms
        self.dims = dims
        self.model = model
        self._lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._memory_replies: deque[Reply] = deque()
        self._default: Callable[[dict[str, Any]], str | list[str] | Reply] | None = None
        # Endpoints without tool calling (vLLM without a tool parser, Ollama models without
        # tools) answer a request carrying `tools` with HTTP 400; this message is vLLM's.
        self.reject_tools = False
        self._ids = itertools.count(1)
        # Clear it to make /v1/embeddings hang (a stuck embedding server); set it to answer.
        self.embeddings_answer = threading.Event()
        self.embeddings_answer.set()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, what OpenAI clients take as base_url."""
        return f"{self.root_url}/v1"

    # ---- scripting -------------------------------------------------------------------------

    def queue_reply(
        self,
        text: str | None = None,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        tokens: list[str] | None = None,
        fail_status: int | None = None,
        ttft_ms: float | None = None,
        token_ms: float | None = None,
        fault: str | None = None,
        fault_after: int = 0,
    ) -> None:
        """Script the next non-mem0 chat reply (FIFO).

        ``tool_calls`` items are ``{"name": str, "arguments": dict | str, "id"?: str}``;
        ``fail_status`` makes that one call fail with this HTTP status (the openai SDK retries
        429/5xx by itself, so the next reply in the queue then answers the retry).
        ``fault`` (one of FAULTS) misbehaves after ``fault_after`` streamed tokens.
        """
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}")
        reply = Reply(text, tokens, tool_calls, fail_status, ttft_ms, token_ms, fault, fault_after)
        with self._lock:
            self._replies.append(reply)

    def queue_memory_reply(self, json_text: str, *, fail_status: int | None = None) -> None:
        """Script the answer to the next mem0 memory-writing call (extract/facts/update)."""
        with self._lock:
            self._memory_replies.append(Reply(json_text, fail_status=fail_status))

    def set_default(self, fn: Callable[[dict[str, Any]], str | list[str] | Reply] | None) -> None:
        """Decide unscripted chat replies: ``fn(request_body)`` returns text, a token list or
        a Reply (e.g. a scripted failure, or tool calls chosen from the request). With ``request_images`` it can answer per screen:
        by a marker in the image, or by counting the calls it has seen."""
        self._default = fn

    @staticmethod
    def request_images(body: dict[str, Any]) -> list[bytes]:
        """The decoded bytes of every base64 data-URL image part in a chat request body."""
        out: list[bytes] = []
        for m in body.get("messages") or []:
            for url in _images_of(m.get("content")):
                if url.startswith("data:") and ";base64," in url:
                    out.append(base64.b64decode(url.split(";base64,", 1)[1]))
        return out

    def clear(self) -> None:
        """Drop scripted replies and recorded requests."""
        with self._lock:
            self._replies.clear()
            self._memory_replies.clear()
        self.requests.clear()

    @property
    def pending_replies(self) -> int:
        """Scripted chat replies not yet consumed."""
        with self._lock:
            return len(self._replies)

    @staticmethod
    def default_tokens(n: int) -> list[str]:
        """Exactly ``n`` deterministic tokens forming sentences of eight words (benchmarks)."""
        tokens: list[str] = []
        for i in range(n):
            word = _BENCH_WORDS[i % len(_BENCH_WORDS)]
            if i % 8 == 0:
                word = word.capitalize()
            end = i % 8 == 7 or i == n - 1
            tokens.append(word + (". " if end else " ") if i < n - 1 else word + ".")
        return tokens

    def embed(self, text: str, dims: int | None = None) -> list[float]:
        """The vector /v1/embeddings returns for ``text``."""
        return hashed_embedding(text, dims or self.dims)

    def chat_requests(self, *, mem0: bool | None = None) -> list[dict[str, Any]]:
        """Recorded chat calls; ``mem0=False`` keeps only non-mem0 ones, True only mem0 ones."""
        out = self.requests.of_kind("chat")
        if mem0 is None:
            return out
        return [r for r in out if (r["mem0"] is not None) == mem0]

    # ---- HTTP ------------------------------------------------------------------------------

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Route one request."""
        path = request.path.rstrip("/")
        if request.method == "GET" and path in ("/v1/models", "/models"):
            self.requests.append({"path": path, "body": None, "t": request.t, "kind": "models"})
            return HttpResponse.json({"object": "list", "data": [self._model_card(self.model)]})
        if request.method == "GET" and path.startswith(("/v1/models/", "/models/")):
            self.requests.append({"path": path, "body": None, "t": request.t, "kind": "models"})
            return HttpResponse.json(self._model_card(path.rsplit("/", 1)[-1]))
        if path in ("/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/embeddings"):
            if request.method != "POST":
                return _error(405, f"Method {request.method} not allowed", "invalid_request_error")
            try:
                body = request.json()
            except ValueError:
                return _error(400, "We could not parse the JSON body of your request.")
            if not isinstance(body, dict):
                return _error(400, "The request body must be a JSON object.")
            if path.endswith("/embeddings"):
                if not self.embeddings_answer.is_set():  # stuck: accept, answer when set
                    await asyncio.to_thread(self.embeddings_answer.wait, 60)
                return self._embeddings(request, path, body)
            return await self._chat(request, path, body)
        return _error(
            404, f"Unknown request URL: {request.method} {request.path}", code="not_found"
        )

    def _model_card(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 0, "owned_by": "fake"}

    # ---- embeddings ------------------------------------------------------------------------

    def _embeddings(self, request: HttpRequest, path: str, body: dict[str, Any]) -> HttpResponse:
        raw = body.get("input")
        if isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            inputs = [" ".join(map(str, raw))]  # one pre-tokenised input
        elif isinstance(raw, list) and raw:
            inputs = [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
        else:
            return _error(400, "'input' must be a non-empty string or array", param="input")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            return _error(400, f"Invalid encoding_format {fmt!r}", param="encoding_format")
        dims = int(body.get("dimensions") or self.dims)
        self.requests.append(
            {"path": path, "body": body, "t": request.t, "kind": "embeddings", "inputs": inputs}
        )
        data = []
        for i, text in enumerate(inputs):
            vec = hashed_embedding(text, dims)
            emb: Any = vec
            if fmt == "base64":
                emb = base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(count_words(t) for t in inputs)
        return HttpResponse.json(
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or self.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    # ---- chat ------------------------------------------------------------------------------

    def _pop(self, queue: deque[Reply]) -> Reply | None:
        with self._lock:
            return queue.popleft() if queue else None

    def _unscripted(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> Reply:
        """Reply when nothing is queued: set_default, forced tool, JSON mode, or echo."""
        if self._default is not None:
            out = self._default(body)
            if isinstance(out, Reply):
                return out
            return Reply(tokens=out) if isinstance(out, list) else Reply(text=out)
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        said = _text_of(last_user.get("content")).strip()
        images = _images_of(last_user.get("content"))
        text = f"You said: {said}." if said else "Hello."
        if images:
            text += f" I see {len(images)} image{'s' if len(images) > 1 else ''}."
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "function":
            name = choice["function"]["name"]
            tool = next(
                (t for t in body.get("tools", []) if t.get("function", {}).get("name") == name), {}
            )
            params = tool.get("function", {}).get("parameters", {})
            args = _schema_instance(params, params, said or "fake") or {}
            return Reply(tool_calls=[{"name": name, "arguments": args}])
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            schema = fmt.get("json_schema", {}).get("schema", {})
            return Reply(
                text=json.dumps(_schema_instance(schema, schema, text), ensure_ascii=False)
            )
        if fmt.get("type") == "json_object":
            return Reply(text=json.dumps({"reply": text}, ensure_ascii=False))
        return Reply(text=text)

    async def _chat(self, request: HttpRequest, path: str, body: dict[str, Any]) -> HttpResponse:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty array", param="messages")
        mem0_kind = classify_mem0(messages)
        images = [url for m in messages for url in _images_of(m.get("content"))]
        record: dict[str, Any] = {
            "path": path,
            "body": body,
            "t": request.t,
            "kind": "chat",
            "mem0": mem0_kind,
            "stream": bool(body.get("stream")),
            "images": images,
            "status": 200,
            "tokens_sent": 0,
            "t_first_token": None,
            "t_done": None,
            "completed": False,
            "disconnected": False,
        }
        self.requests.append(record)
        if self.reject_tools and body.get("tools"):
            record.update(status=400, t_done=time.monotonic())
            return _error(400, VLLM_NO_TOOLS)

        if mem0_kind in ("extract", "facts", "update"):
            reply = self._pop(self._memory_replies) or Reply(
                mem0_default_reply(mem0_kind, messages)
            )
        elif mem0_kind is not None:
            reply = Reply(mem0_default_reply(mem0_kind, messages))
        else:
            reply = self._pop(self._replies) or self._unscripted(body, messages)
        record["reply"] = reply

        if reply.fail_status:
            record["status"] = reply.fail_status
            record["t_done"] = time.monotonic()
            kind = "rate_limit_error" if reply.fail_status == 429 else "server_error"
            response = _error(reply.fail_status, f"Scripted failure {reply.fail_status}", kind)
            # The openai SDK honours retry-after-ms, so retry tests do not sit out its backoff.
            response.headers["retry-after-ms"] = "1"
            return response

        if reply.fault == "hang_headers":
            record["status"] = None
            await asyncio.Event().wait()  # until the client gives up or the fake stops

        if reply.fault in ("break", "garbage") and not body.get("stream"):
            return _faulty_body(reply.fault)

        tokens = reply.token_list()
        finish = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and 0 < limit < len(tokens):
            tokens, finish = tokens[:limit], "length"
        tool_calls = _normalise_tool_calls(reply.tool_calls) if reply.tool_calls else []
        if tool_calls and finish == "stop":
            finish = "tool_calls"
        ttft = (self.ttft_ms if reply.ttft_ms is None else reply.ttft_ms) / 1000
        gap = (self.token_ms if reply.token_ms is None else reply.token_ms) / 1000
        prompt_tokens = sum(count_words(_text_of(m.get("content"))) for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(tokens) + len(tool_calls),
            "total_tokens": prompt_tokens + len(tokens) + len(tool_calls),
        }
        record["usage"] = usage  # what this call costs (sent only if it runs to the end)
        meta = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "system_fingerprint": "fp_fake",
        }
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            stream = self._sse(record, meta, tokens, tool_calls, finish, usage, include_usage)
            if reply.fault is not None:
                stream = self._faulty(reply, record, meta, tokens)
            return HttpResponse(
                headers={
                    "content-type": "text/event-stream; charset=utf-8",
                    "cache-control": "no-cache",
                },
                stream=stream(ttft, gap),
            )

        pieces = len(tokens) + len(tool_calls)
        delay = ttft + gap * max(0, pieces - 1) if pieces else 0.0
        if delay > 0:
            await asyncio.sleep(delay)
        record.update(tokens_sent=len(tokens), completed=True, t_done=time.monotonic())
        record["t_first_token"] = record["t_done"]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(tokens) if tokens or not tool_calls else None,
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        return HttpResponse.json(
            {
                **meta,
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                ],
                "usage": usage,
            }
        )

    def _sse(
        self,
        record: dict[str, Any],
        meta: dict[str, Any],
        tokens: list[str],
        tool_calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, Any],
        include_usage: bool,
    ) -> Callable[[float, float], AsyncIterator[bytes]]:
        """Build the SSE generator: role, content tokens, tool-call deltas, finish, usage."""

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            data: dict[str, Any] = {
                **meta,
                "object": "chat.completion.chunk",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                data["usage"] = None
            return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"

        async def gen(ttft: float, gap: float) -> AsyncIterator[bytes]:
            first = True

            async def pace() -> None:
                nonlocal first
                wait = ttft if first else gap
                if wait > 0:
                    await asyncio.sleep(wait)
                if first:
                    record["t_first_token"] = time.monotonic()
                first = False

            try:
                yield chunk({"role": "assistant", "content": "", "refusal": None})
                for token in tokens:
                    await pace()
                    yield chunk({"content": token})
                    record["tokens_sent"] += 1
                for i, call in enumerate(tool_calls):
                    await pace()
                    fn = call["function"]
                    head = {"index": i, "id": call["id"], "type": "function"}
                    yield chunk(
                        {
                            "tool_calls": [
                                {**head, "function": {"name": fn["name"], "arguments": ""}}
                            ]
                        }
                    )
                    args = fn["arguments"]
                    half = math.ceil(len(args) / 2)
                    for part in (args[:half], args[half:]):
                        if part:
                            yield chunk(
                                {"tool_calls": [{"index": i, "function": {"arguments": part}}]}
                            )
                yield chunk({}, finish)
                if include_usage:
                    data = {
                        **meta,
                        "object": "chat.completion.chunk",
                        "choices": [],
                        "usage": usage,
                    }
                    yield b"data: " + json.dumps(data).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
                record["completed"] = True
            except (asyncio.CancelledError, GeneratorExit):
                record["disconnected"] = True
                raise
            finally:
                record["t_done"] = time.monotonic()

        return gen

    def _faulty(
        self, reply: Reply, record: dict[str, Any], meta: dict[str, Any], tokens: list[str]
    ) -> Callable[[float, float], AsyncIterator[bytes]]:
        """A stream that sends ``fault_after`` tokens, then misbehaves as ``reply.fault``."""

        def chunk(delta: dict[str, Any]) -> bytes:
            data = {
                **meta,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
            }
            return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"

        async def gen(ttft: float, gap: float) -> AsyncIterator[bytes]:
            try:
                yield chunk({"role": "assistant", "content": ""})
                for i, token in enumerate(tokens[: reply.fault_after]):
                    await asyncio.sleep(ttft if i == 0 else gap)
                    yield chunk({"content": token})
                    record["tokens_sent"] += 1
                if reply.fault == "hang":
                    await asyncio.Event().wait()
                elif reply.fault == "break":
                    raise _BrokenStream
                else:  # garbage
                    yield b"data: {this is not json]\n\n"
                    yield b"data: [DONE]\n\n"
            except (asyncio.CancelledError, GeneratorExit):
                record["disconnected"] = True
                raise
            finally:
                record["t_done"] = time.monotonic()

        return gen


def _faulty_body(fault: str) -> HttpResponse:
    """A non-streamed answer that breaks off mid-body, or is not JSON at all."""
    headers = {"content-type": "application/json"}
    if fault == "garbage":
        return HttpResponse(headers=headers, body=b"<html>502 upstream gone</html>")

    async def broken() -> AsyncIterator[bytes]:
        yield b'{"id": "chatcmpl-fake", "choices": ['
        raise _BrokenStream

    return HttpResponse(headers=headers, stream=broken())


def _error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    *,
    param: str | None = None,
    code: str | None = None,
) -> HttpResponse:
    """An error in OpenAI's shape."""
    return HttpResponse.json(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status
    )


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; prints the base URL first (for benchmark harnesses)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttft-ms", type=float, default=0)
    parser.add_argument("--token-ms", type=float, default=0)
    parser.add_argument("--dims", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=0, help="default reply length in tokens")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(args.ttft_ms, args.token_ms, dims=args.dims)
    if args.tokens:
        fixed = FakeOpenAI.default_tokens(args.tokens)
        fake.set_default(lambda _body: fixed)
    done = threading.Event()
    # Set explicitly: a shell's background job inherits SIGINT ignored, and TERM is what
    # harnesses send.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with fake:
        print(fake.base_url, flush=True)
        done.wait()


if __name__ == "__main__":
    main()
