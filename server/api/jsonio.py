"""Strict JSON in and valid JSON out for every REST route.

In: Starlette parses bodies with json.loads, which accepts NaN and Infinity, raises
RecursionError on deep nesting and hands lone UTF-16 surrogates ("\\ud800") on to code that
later fails to encode them (SQLite, the response): 500s. This middleware checks each JSON
body once with pydantic-core's parser first and answers 400 with a message instead.
Out: every JSON response goes through server.jsonout, never emitting NaN or a surrogate.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import jsonout


class SafeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return jsonout.dumps(content).encode("utf-8")


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            ctype = value.split(b";")[0].strip().lower()
            return ctype == b"application/json" or ctype.endswith(b"+json")
    return False


class StrictJSONBody:
    """Pure ASGI middleware: a request whose JSON body is not strict JSON gets 400."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            try:
                from_json(body, allow_inf_nan=False)
            except ValueError as e:
                response = SafeJSONResponse(
                    {"detail": f"The request body is not valid JSON: {e}."}, status_code=400
                )
                return await response(scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return dict(type="http.request", body=body, more_body=False)  # ASGI message
            return await receive()

        await self.app(scope, replay, send)
