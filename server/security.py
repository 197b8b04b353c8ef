"""Who may talk to this server from a browser: Host and Origin allow-lists, as ASGI middleware
in front of every HTTP route and every WebSocket (routes added later are covered too).

Why: with no auth (local mode) any web page the user visits can reach 127.0.0.1. A page on
another site sends its own ``Origin``; a DNS-rebinding page (evil.example re-pointed at
127.0.0.1) sends ``Host: evil.example``. Both are refused here, before any route runs
(the class of Ollama's CVE-2024-28224). Clients that are not browsers (curl, scripts, native
apps) send no ``Origin`` and are allowed; a state-changing request that a browser marks as
cross-site (``Sec-Fetch-Site``) is refused even without one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.auth import SIDECAR_COOKIE, SIDECAR_MESSAGE, sidecar_credential_ok
from server.config import Settings, secret
from server.hosts import host_name, is_loopback
from server.hub.protocol import error_event

# The Tauri desktop shell's page origins (macOS/Linux; Windows old and new).
TAURI_ORIGINS = ("tauri://localhost", "http://tauri.localhost", "https://tauri.localhost")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WS_FORBIDDEN = 4403
# Orchestrator probes name the container by IP; readiness tells a rebinding page nothing.
HEALTH_PATHS = frozenset({"/health", "/health/details"})
WS_UNAUTHORIZED = 4401


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` lower-cased, without the scheme's default port."""
    parts = urlsplit(origin.strip().lower())
    netloc = strip_default_port(parts.netloc, parts.scheme)
    return f"{parts.scheme}://{netloc}" if parts.scheme and netloc else origin.strip().lower()


def strip_default_port(netloc: str, scheme: str) -> str:
    default = {"http": ":80", "ws": ":80", "https": ":443", "wss": ":443"}.get(scheme)
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


@dataclass(frozen=True)
class WebPolicy:
    """The allow-lists, from settings: PUBLIC_HOSTS, ALLOWED_ORIGINS (+ CORS_ORIGINS)."""

    public_hosts: frozenset[str]
    any_host: bool
    origins: frozenset[str]
    sidecar_token: str | None = None  # `serve --sidecar`: required on every request

    @classmethod
    def from_settings(cls, s: Settings) -> WebPolicy:
        hosts = split_list(s.public_hosts)
        origins = [*split_list(s.allowed_origins), *split_list(s.cors_origins), *TAURI_ORIGINS]
        return cls(
            public_hosts=frozenset(host_name(h) for h in hosts if h != "*"),
            any_host="*" in hosts,
            origins=frozenset(normalise_origin(o) for o in origins),
            sidecar_token=secret(s.sidecar_token),
        )

    @property
    def cors_origins(self) -> list[str]:
        """Origins that get CORS headers (the server's own needs none)."""
        return sorted(self.origins)

    def host_allowed(self, host: str | None) -> bool:
        if self.any_host:
            return True
        if not host:
            return False
        name = host_name(host)
        return is_loopback(name) or name in self.public_hosts

    def origin_allowed(self, origin: str, host: str | None, scheme: str) -> bool:
        """The server's own origin (same host and port as the request), or a listed one."""
        norm = normalise_origin(origin)
        if norm in self.origins:
            return True
        parts = urlsplit(norm)
        if not host or parts.scheme not in ("http", "https"):
            return False
        own = strip_default_port(
            host.strip().lower(), {"ws": "http", "wss": "https"}.get(scheme, scheme)
        )
        return strip_default_port(parts.netloc, parts.scheme) == own

    def sidecar_refusal(self, scope: Scope) -> tuple[str, str] | None:
        """(unauthorized, message) when a sidecar request lacks this launch's token."""
        if self.sidecar_token is None:
            return None
        headers = dict(_headers(scope["headers"]))
        query = scope.get("query_string", b"").decode("latin-1")
        if sidecar_credential_ok(self.sidecar_token, headers, query):
            return None
        return ("unauthorized", SIDECAR_MESSAGE)

    def refusal(self, scope: Scope) -> tuple[str, str] | None:
        """(code, message) when this request must be refused, else None."""
        headers = dict(_headers(scope["headers"]))
        host = headers.get("host")
        probe = scope["type"] == "http" and scope.get("path") in HEALTH_PATHS
        if not probe and not self.host_allowed(host):
            return (
                "forbidden_host",
                f"Host {host!r} is not allowed. Use 127.0.0.1 or localhost, or add the name "
                "to PUBLIC_HOSTS.",
            )
        origin = headers.get("origin")
        if origin is not None:
            if not self.origin_allowed(origin, host, scope.get("scheme", "http")):
                return (
                    "forbidden_origin",
                    f"Origin {origin!r} is not allowed. Add it to ALLOWED_ORIGINS to let that "
                    "site use this server.",
                )
            return None
        method = scope.get("method", "GET")
        fetch_site = headers.get("sec-fetch-site", "")
        if method not in SAFE_METHODS and fetch_site in ("cross-site", "same-site"):
            return ("forbidden_origin", "Cross-site requests that change data are refused.")
        return None


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[str, str]]:
    for k, v in raw:
        yield k.decode("latin-1").lower(), v.decode("latin-1")


class WebSecurityMiddleware:
    """Refuse foreign Hosts and Origins: HTTP 403 ``{"detail": ...}``; a WebSocket is
    accepted and closed at once with 4403 (reason = the code) after one fatal ``error``
    event, so browsers (CloseEvent.code) and scripts both see why. A refused WebSocket
    never reaches the app. In sidecar mode a request without the launch's token is refused
    the same way with 401 / 4401; the studio opened with ``?token=`` gets it as an HttpOnly,
    SameSite=Strict cookie so the page's own requests carry it."""

    def __init__(self, app: ASGIApp, policy: WebPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refused = self.policy.refusal(scope) or self.policy.sidecar_refusal(scope)
        if refused is None:
            if self.policy.sidecar_token and scope["type"] == "http":
                send = self._with_sidecar_cookie(scope, send)
            return await self.app(scope, receive, send)
        code, message = refused
        unauthorized = code == "unauthorized"
        if scope["type"] == "http":
            status = 401 if unauthorized else 403
            return await JSONResponse({"detail": message}, status)(scope, receive, send)
        close = WS_UNAUTHORIZED if unauthorized else WS_FORBIDDEN
        await _ws_refuse(scope, receive, send, code, message, close)

    def _with_sidecar_cookie(self, scope: Scope, send: Send) -> Send:
        """Set the cookie when the token came in the query (the studio page's first load)."""
        query = scope.get("query_string", b"").decode("latin-1")
        if "token=" not in query or SIDECAR_COOKIE in dict(_headers(scope["headers"])).get(
            "cookie", ""
        ):
            return send
        cookie = f"{SIDECAR_COOKIE}={self.policy.sidecar_token}; Path=/; HttpOnly; SameSite=Strict"

        async def sender(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        return sender


async def _ws_refuse(
    scope: Scope, receive: Receive, send: Send, code: str, message: str, close: int = WS_FORBIDDEN
) -> None:
    ws = WebSocket(scope, receive, send)
    offered = scope.get("subprotocols") or []
    # A browser that offered subprotocols drops a handshake that selects none (1006, no code).
    await ws.accept(subprotocol=offered[0] if offered else None)
    await ws.send_json(error_event(code, message, fatal=True))
    await ws.close(close, reason=code)
