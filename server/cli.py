"""`desktopmate serve`: start the server with settings from the environment / .env."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import Any

import uvicorn

from server.config import Settings
from server.security import host_name, is_loopback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="desktopmate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP + WebSocket server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument("--log-level", default=None)
    args = parser.parse_args(argv)

    settings = Settings()
    if args.log_level:
        settings.log_level = args.log_level
    return asyncio.run(serve_forever(settings, args.host, args.port))


def insecure_bind(settings: Settings, host: str) -> str | None:
    """Why binding ``host`` is refused, or None. Local mode trusts whoever connects (the
    token is just a user name), so it stays on loopback unless auth is configured or
    ALLOW_INSECURE_LOCAL_BIND=true accepts the risk."""
    if settings.auth_configured or settings.allow_insecure_local_bind:
        return None
    if is_loopback(host_name(host)):
        return None
    return (
        f"Refusing to listen on {host!r} in local mode: without auth anyone who can reach "
        "this address can act as any user. Set AUTH_TOKENS or JWT_SECRET / JWT_JWKS_URL, "
        "listen on 127.0.0.1, or set ALLOW_INSECURE_LOCAL_BIND=true to accept the risk."
    )


async def serve_forever(settings: Settings, host: str, port: int) -> int:
    if refusal := insecure_bind(settings, host):
        print(refusal, file=sys.stderr, flush=True)
        return 2
    from server.app import create_app  # the heavy import, after the cheap refusal

    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # is TCP, and Nagle would hold small events back for up to one client round trip.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn_config(create_app(settings), settings, log_level=settings.log_level.lower())
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    print(f"DesktopMate-Plus listening on http://{shown}:{bound}", flush=True)
    await server.serve(sockets=[sock])
    return 0


def uvicorn_config(app: Any, settings: Settings, **over: Any) -> uvicorn.Config:
    """The transport settings, derived from ours: every frame the protocol allows reaches
    the session (which answers a too-large one with an error event); only frames beyond
    WS_MAX_TRANSPORT_BYTES are closed by uvicorn with 1009. Tests start servers with it too."""
    return uvicorn.Config(
        app,
        ws_max_size=settings.ws_transport_max_bytes,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        ws_per_message_deflate=settings.ws_compression,
        access_log=False,
        **over,
    )


if __name__ == "__main__":
    sys.exit(main())
