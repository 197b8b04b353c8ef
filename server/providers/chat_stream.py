"""Streamed chat completions over aiohttp + orjson: the persona turn's hot path.

Why not the openai SDK + langchain-openai here: per streamed chunk they build pydantic
objects, LangChain chunks and run callbacks, about 55% of the server's CPU under load
(issue 16). This reads the SSE body, parses each event with orjson and hands the text on.
Failures are raised as the openai SDK's own exception types and retried by the SDK's rules,
so server/providers/failures.py classifies them exactly as it does for the SDK.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import httpx
import openai
import orjson

from server.providers.llm_errors import retry_delay, should_retry, status_error, stream_error
from server.providers.sse import Cadence, ReadWatch, SSEParser, drain
from server.providers.usage_meter import TokenRatio, TurnMeter

# One read of a backlog (a client that stopped reading, a busy loop) is handed on in pieces
# of at most this many characters: the session's bounded outbound queue then bounds bytes,
# not only frames, whatever size the event loop reads the body in.
MAX_DELTA_CHARS = 4096


@dataclass
class ToolCallOut:
    """One streamed tool call, its arguments as the raw JSON text the model sent."""

    id: str | None = None
    name: str = ""
    arguments: str = ""


@dataclass
class ChatResult:
    content: str
    tool_calls: list[ToolCallOut] = field(default_factory=list)
    usage: dict[str, int] | None = None  # prompt_tokens, completion_tokens, total_tokens
    finish_reason: str | None = None
    model: str | None = None


def take(chunk: dict[str, Any], result: ChatResult, calls: dict[int, ToolCallOut]) -> str:
    """Fold one chunk into the result; returns its text (the first choice's only)."""
    if usage := chunk.get("usage"):
        result.usage = usage
    if result.model is None:
        result.model = chunk.get("model")
    text = ""
    for choice in chunk.get("choices") or ():
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        text += delta.get("content") or ""
        for tc in delta.get("tool_calls") or ():
            call = calls.setdefault(tc.get("index", 0), ToolCallOut())
            call.id = tc.get("id") or call.id
            fn = tc.get("function") or {}
            call.name += fn.get("name") or ""
            call.arguments += fn.get("arguments") or ""
        if reason := choice.get("finish_reason"):
            result.finish_reason = reason
    return text


class ChatStream:
    """One streamed chat call per ``stream()``; one connection pool per process.

    aiohttp, not httpx: its C parser and its stream reader hand over whatever arrived in
    one piece, so under load several SSE events cost one wake-up and one delta downstream
    (measured: about half httpx's CPU per streamed reply)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        *,
        temperature: float | None,
        max_tokens: int | None,
        timeout_s: float,
        max_retries: int,
        keepalive_s: float = 45.0,
        max_connections: int = 256,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.ratio = TokenRatio()  # this model's prompt tokens per character, as reported
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self.max_connections = max_connections
        # sock_read bounds the wait for the headers; the body has its own idle limit
        # (ReadWatch), since aiohttp moves a sock_read timer on every chunk it receives
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_s, sock_read=timeout_s
        )
        self.headers = {
            "authorization": f"Bearer {api_key}",
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
        self._session: aiohttp.ClientSession | None = None
        # HTTP(S)_PROXY / NO_PROXY read once here: aiohttp's trust_env would look them up
        # (and read ~/.netrc) in a thread on every request
        parts = urlsplit(self.url)
        bypass = parts.hostname is not None and proxy_bypass(parts.hostname)
        self.proxy: str | None = None if bypass else getproxies().get(parts.scheme)

    def session(self) -> aiohttp.ClientSession:
        """Made on first use, on the loop that serves the turns."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.max_connections, keepalive_timeout=self.keepalive_s
                ),
                timeout=self.timeout,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def body(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        tool_choice: str | None,
        temperature: float | None,
        max_tokens: int | None,
    ) -> bytes:
        """The request body, as langchain-openai's ChatOpenAI sends it for a streamed call."""
        body: dict[str, Any] = {
            "messages": messages,
            "model": self.model,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        temperature = self.temperature if temperature is None else temperature
        if temperature is not None:
            body["temperature"] = temperature
        max_tokens = self.max_tokens if max_tokens is None else max_tokens
        if max_tokens is not None:
            body["max_completion_tokens"] = max_tokens
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        return orjson.dumps(body)

    # the openai SDK's exceptions carry httpx objects: made only when something failed
    def _request(self) -> httpx.Request:
        return httpx.Request("POST", self.url)

    def _response(self, resp: aiohttp.ClientResponse, body: bytes = b"") -> httpx.Response:
        headers = list(resp.headers.items())
        return httpx.Response(resp.status, headers=headers, content=body, request=self._request())

    async def _open(self, content: bytes) -> aiohttp.ClientResponse:
        """Send the request; retry connection errors, 408/409/429 and 5xx like the SDK.
        A connection dropped before any answer is retried once more at once, uncounted: a
        kept connection the server closed while it sat idle (LLM_KEEPALIVE_S)."""
        session = self.session()
        attempt = 0
        stale = False
        while True:
            headers: Any = None
            cause: BaseException | None = None
            try:
                resp = await session.post(
                    self.url, data=content, headers=self.headers, proxy=self.proxy
                )
            except (aiohttp.ServerTimeoutError, TimeoutError) as e:
                error: openai.OpenAIError = openai.APITimeoutError(request=self._request())
                cause = e
            except aiohttp.ServerDisconnectedError as e:
                if not stale:
                    stale = True
                    continue
                error, cause = openai.APIConnectionError(request=self._request()), e
            except aiohttp.ClientError as e:
                error, cause = openai.APIConnectionError(request=self._request()), e
            else:
                if resp.status < 400:
                    return resp
                try:
                    answer = await resp.read()
                except aiohttp.ClientError:
                    answer = b""
                finally:
                    resp.release()
                response = self._response(resp, answer)
                error, headers = status_error(response), response.headers
                if not should_retry(response):
                    raise error
            if attempt >= self.max_retries:
                raise error from cause
            await asyncio.sleep(retry_delay(attempt, headers))
            attempt += 1

    async def stream(
        self,
        messages: list[dict[str, Any]],
        on_delta: Callable[[str], object],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        meter: TurnMeter | None = None,
        flush_s: float = 0.0,
    ) -> ChatResult:
        """Stream one reply: ``on_delta`` gets the text as it arrives (what arrived together
        in one piece); the whole reply (text, tool calls, usage) is returned at the end.
        ``meter`` counts the call as it goes, so a call cut short still has its tokens
        (estimated). ``flush_s`` (STREAM_FLUSH_MS): after the first text, what arrives is
        read and handed on at most this often, several tokens a delta (sse.Cadence)."""
        resp = await self._open(self.body(messages, tools, tool_choice, temperature, max_tokens))
        conn = resp.connection
        if conn is not None and conn.protocol is not None:  # the body: ReadWatch instead
            conn.protocol.read_timeout = None
        watch = ReadWatch(self.timeout_s)
        call = meter.start(messages) if meter is not None else None  # the model is reading it
        parts: list[str] = []
        calls: dict[int, ToolCallOut] = {}
        result = ChatResult("")
        parser = SSEParser()
        cadence = Cadence(resp.content, flush_s)
        done = ok = False

        def fold(events: list[tuple[str | None, bytes]]) -> None:
            nonlocal done
            pending: list[str] = []
            try:
                for event, data in events:
                    if data.startswith(b"[DONE]"):
                        done = True
                        return
                    try:
                        chunk = orjson.loads(data)
                        if event == "error" or chunk.get("error"):
                            stream_error(chunk, event, self.url)
                        if text := take(chunk, result, calls):
                            pending.append(text)
                            if call is not None:
                                call.output_tokens += 1  # about one token per streamed chunk
                    except (orjson.JSONDecodeError, AttributeError, TypeError) as e:
                        raise openai.APIResponseValidationError(
                            self._response(resp),
                            data.decode(errors="replace"),
                            message=f"The stream sent an invalid chunk ({type(e).__name__}: {e}).",
                        ) from e
            finally:  # text before a bad event was received: it counts as sent
                if pending:
                    text = "".join(pending)
                    parts.append(text)
                    for i in range(0, len(text), MAX_DELTA_CHARS):
                        on_delta(text[i : i + MAX_DELTA_CHARS])
                    cadence.handed_on()

        try:
            try:
                read, loop = resp.content.readany, watch.loop
                while block := await read():  # b"" at the end of the body
                    watch.last = loop.time()
                    fold(parser.feed(block))
                    if done:
                        break
                    if cadence.due:
                        await cadence.wait()
                else:
                    fold(parser.end())
                if done:
                    await drain(resp)
            except (aiohttp.ServerTimeoutError, TimeoutError) as e:
                raise openai.APITimeoutError(request=self._request()) from e
            except aiohttp.ClientError as e:
                raise openai.APIConnectionError(request=self._request()) from e
            except asyncio.CancelledError:
                if watch.ours():
                    raise openai.APITimeoutError(request=self._request()) from None
                raise
            ok = True
        finally:
            watch.stop()
            if ok:
                resp.release()  # read to its end: the connection goes back to the pool
            else:
                resp.close()
        result.content = "".join(parts)
        result.tool_calls = [calls[i] for i in sorted(calls)]
        if meter is not None and call is not None and result.usage:
            meter.reported(call, result.usage)
        return result

    def new_meter(self) -> TurnMeter:
        """A meter for one turn's calls, estimating at this model's learned ratio."""
        return TurnMeter(self.ratio)
