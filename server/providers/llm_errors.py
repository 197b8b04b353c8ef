"""The openai SDK's error and retry rules for the lean HTTP clients (chat_stream.py,
embeddings.py): the same exception types, messages and backoff, so
server/providers/failures.py classifies a failure exactly as it does for the SDK."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from typing import Any

import httpx
import openai
import orjson

# the openai SDK's backoff (openai/_constants.py)
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
_STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


def status_error(response: httpx.Response) -> openai.APIStatusError:
    """The SDK's exception for an HTTP error answer (its message and body shape too)."""
    text = response.text.strip()
    body: Any = text
    try:
        body = orjson.loads(text)
        message = f"Error code: {response.status_code} - {body}"
    except orjson.JSONDecodeError:
        message = text or f"Error code: {response.status_code}"
    data = body.get("error", body) if isinstance(body, dict) else body
    cls = _STATUS_ERRORS.get(response.status_code)
    if cls is None:
        cls = openai.InternalServerError if response.status_code >= 500 else openai.APIStatusError
    return cls(message, response=response, body=data)


def should_retry(response: httpx.Response) -> bool:
    hint = response.headers.get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    code = response.status_code
    return code in (408, 409, 429) or code >= 500


def retry_delay(attempt: int, headers: Mapping[str, str] | None) -> float:
    """The server's retry-after(-ms) when sane, else exponential backoff with jitter."""
    after: float | None = None
    if headers is not None:
        try:
            if (ms := headers.get("retry-after-ms")) is not None:
                after = float(ms) / 1000
            elif (s := headers.get("retry-after")) is not None:
                try:
                    after = float(s)
                except ValueError:
                    when = email.utils.parsedate_tz(s)
                    after = email.utils.mktime_tz(when) - time.time() if when else None
        except (TypeError, ValueError):
            after = None
    if after is not None and 0 < after <= 60:
        return after
    delay = min(INITIAL_RETRY_DELAY_S * 2**attempt, MAX_RETRY_DELAY_S)
    return delay * (1 - 0.25 * random.random())


def stream_error(chunk: dict[str, Any], event: str | None, url: str) -> None:
    """An error sent inside the stream, raised as the SDK raises it."""
    if not chunk.get("error") and event != "error":
        return
    error = chunk.get("error", chunk)
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message:
        message = "An error occurred during streaming"
    raise openai.APIError(message, httpx.Request("POST", url), body=error)
