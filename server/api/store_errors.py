"""REST calls that find the store gone (MongoDB unreachable, the SQLite file unusable)
answer 503 "retry later" with the reason, and log one line: an outage, not a bug, so
neither a 500 nor the traceback Starlette's error middleware has the server log."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.jsonio import SafeJSONResponse
from server.hub.store_failures import NO_DATABASE, store_failure
from server.logging import get_logger

log = get_logger(__name__)


class StoreFailures:
    """Pure ASGI middleware (inside Starlette's error middleware, which would re-raise)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:
            if started or not store_failure(e):
                raise
            log.warning("request_store_failed", path=scope.get("path"), error=type(e).__name__)
            body = {"detail": NO_DATABASE[0].upper() + NO_DATABASE[1:]}
            await SafeJSONResponse(body, status_code=503)(scope, receive, send)
