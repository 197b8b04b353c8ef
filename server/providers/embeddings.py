"""Text embeddings from an OpenAI-compatible ``/embeddings`` endpoint, on the event loop.

The memory search before every reply needs one query vector. mem0 gets it through the sync
openai SDK in a worker thread; under load that thread waits for the GIL on the way out and
back (issue 16). This posts the same request mem0's OpenAI embedder sends (aiohttp + orjson,
like server/providers/chat_stream.py; the SDK's errors from llm_errors.py) and keeps the last
vectors in a small LRU, so the same text (the old tier after the fresh one, a repeated
"hello") is embedded once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import httpx
import openai
import orjson

from server.providers.llm_errors import retry_delay, should_retry, status_error


@dataclass(frozen=True)
class Embedded:
    vector: list[float]
    # the endpoint's usage (prompt_tokens ...) when it was asked; None: from the cache
    usage: dict[str, int] | None


class Embedder:
    """One query text -> one vector. Errors are the openai SDK's exception types."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        dims: int | None,
        *,
        timeout_s: float,
        max_retries: int = 2,
        cache_size: int = 256,
    ) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.dims = dims  # sent as `dimensions` when set, as mem0 does
        self.max_retries = max_retries
        self.cache_size = cache_size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
        parts = urlsplit(self.url)
        bypass = parts.hostname is not None and proxy_bypass(parts.hostname)
        self.proxy: str | None = None if bypass else getproxies().get(parts.scheme)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_here(self) -> aiohttp.ClientSession:
        """One pool per event loop (scripts and tests run more than one loop in turn)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None

    def _invalid(self, body: object, why: str) -> openai.APIResponseValidationError:
        response = httpx.Response(200, request=httpx.Request("POST", self.url))
        return openai.APIResponseValidationError(response, body, message=why)

    async def embed(self, text: str) -> Embedded:
        text = text.replace("\n", " ")  # what mem0's embedder sends
        if (hit := self._cache.get(text)) is not None:
            self._cache.move_to_end(text)
            return Embedded(hit, None)
        body: dict[str, Any] = {"input": [text], "model": self.model, "encoding_format": "float"}
        if self.dims is not None:
            body["dimensions"] = self.dims
        raw = await self._post(orjson.dumps(body))
        try:
            answer = orjson.loads(raw)
            vector = [float(x) for x in answer["data"][0]["embedding"]]
        except orjson.JSONDecodeError as e:
            raise self._invalid(raw.decode(errors="replace"), "The answer is not JSON.") from e
        except (KeyError, IndexError, TypeError, ValueError) as e:
            why = f"The answer has no embedding ({type(e).__name__}: {e})."
            raise self._invalid(answer, why) from e
        self._cache[text] = vector
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        usage = answer.get("usage")
        return Embedded(vector, usage if isinstance(usage, dict) else {})

    async def _post(self, content: bytes) -> bytes:
        """POST, the body of a 2xx answer; retry connection errors, 408/409/429 and 5xx
        like the SDK."""
        attempt = 0
        while True:
            headers: Any = None
            cause: BaseException | None = None
            try:
                async with self._session_here().post(
                    self.url, data=content, headers=self.headers, proxy=self.proxy
                ) as resp:
                    raw = await resp.read()
                    if resp.status < 400:
                        return raw
                    response = httpx.Response(
                        resp.status,
                        headers=list(resp.headers.items()),
                        content=raw,
                        request=httpx.Request("POST", self.url),
                    )
                error: openai.OpenAIError = status_error(response)
                headers = response.headers
                if not should_retry(response):
                    raise error
            except (aiohttp.ServerTimeoutError, TimeoutError) as e:
                error = openai.APITimeoutError(request=httpx.Request("POST", self.url))
                cause = e
            except aiohttp.ClientError as e:
                error = openai.APIConnectionError(request=httpx.Request("POST", self.url))
                cause = e
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the caller's budget ran out meanwhile
                raise asyncio.CancelledError
            if attempt >= self.max_retries:
                raise error from cause
            await asyncio.sleep(retry_delay(attempt, headers))
            attempt += 1
