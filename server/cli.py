"""`desktopmate serve` (the server), `desktopmate models ...` (model files) and
`desktopmate memory cleanup [--days N]` (move memories not updated for N days to the old tier)."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from pydantic import SecretStr, ValidationError

from server.config import Settings, secret
from server.hosts import host_name, is_loopback
from server.models.cli import add_models_parser, run_models_command
from server.replicas import replica_refusal
from server.sidecar.lock import AlreadyRunning, InstanceLock
from server.sidecar.parent import ParentWatch
from server.sidecar.ready import ReadyServer, announce, ready_info
from server.startup import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    data_dir_problem,
    listen_failure,
    start_failure,
)

# Seconds uvicorn waits for open connections after SIGTERM before cancelling them; the
# lifespan shutdown (store close) follows. Together well under the 5 s a parent allows.
GRACEFUL_SHUTDOWN_S = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="desktopmate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP + WebSocket server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument("--log-level", default=None)
    serve.add_argument(
        "--sidecar",
        action="store_true",
        help="run under a parent app: JSON ready line with a per-launch token required on "
        "every request, exit when the parent exits (stdin closed or pid gone), one instance "
        "per DATA_DIR",
    )
    serve.add_argument(
        "--parent-pid", type=int, default=None, help="with --sidecar: the pid to watch"
    )
    add_models_parser(sub)
    memory = sub.add_parser("memory", help="long-term memory maintenance")
    memory_sub = memory.add_subparsers(dest="memory_command", required=True)
    cleanup = memory_sub.add_parser(
        "cleanup", help="move memories not updated for --days days from fresh to old"
    )
    cleanup.add_argument("--days", type=float, default=None, help="MEMORY_OLD_AFTER_DAYS")
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as e:
        print(settings_errors(e), file=sys.stderr, flush=True)
        return EXIT_CONFIG
    if args.command == "models":
        return run_models_command(settings, args)
    if args.command == "memory":
        if problem := invalid_mongodb_uri(settings):
            print(f"desktopmate: {problem}", file=sys.stderr, flush=True)
            return EXIT_CONFIG
        return memory_cleanup(settings, args.days)
    if args.log_level:
        settings.log_level = args.log_level
    if refusal := (
        insecure_bind(settings, args.host)
        or replica_refusal(settings)
        or missing_stt_url(settings)
        or vector_store_refusal(settings)
    ):
        print(refusal, file=sys.stderr, flush=True)  # before anything is created
        return EXIT_CONFIG
    if problem := invalid_mongodb_uri(settings):  # a setting to fix, not a server to wait for
        print(f"desktopmate: {problem}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    if problem := data_dir_problem(settings.data_dir):  # before the sidecar's lock file
        print(f"desktopmate: {problem}", file=sys.stderr, flush=True)
        return problem.code
    try:
        if args.sidecar:
            return run_sidecar(settings, args.host, args.port, args.parent_pid)
        return asyncio.run(
            serve_forever(settings, args.host, args.port, machine=args.port == 0),
            loop_factory=loop_factory(settings),
        )
    except KeyboardInterrupt:  # Ctrl-C: uvicorn shut down gracefully, then raised it again
        return EXIT_INTERRUPTED


def settings_errors(e: ValidationError) -> str:
    """Which settings are wrong and why, by their environment names (never their values:
    one may be a key)."""
    lines = []
    for err in e.errors():
        name = "_".join(str(part) for part in err["loc"]).upper() or "settings"
        lines.append(f"  - {name}: {err['msg']}")
    return "Invalid settings (environment or .env; .env.example documents each):\n" + "\n".join(
        lines
    )


def invalid_mongodb_uri(settings: Settings) -> str | None:
    """Why MONGODB_URI is not a MongoDB URI at all (exit 2, as any bad setting), or None."""
    if not (uri := secret(settings.mongodb_uri)):
        return None
    from server.store.mongo_reach import invalid  # pymongo: only with MongoDB configured

    return invalid(uri, settings.mongodb_timeout_s)


def vector_store_refusal(settings: Settings) -> str | None:
    """A vector store setting that cannot work (memory would be in error for good): exit 2."""
    if not (settings.memory_enabled and settings.embedder_configured):
        return None
    from server.vector_store import vector_store_problem

    if problem := vector_store_problem(settings):
        return f"Refusing to start: {problem}; or set MEMORY_ENABLED=false."
    return None


def missing_stt_url(settings: Settings) -> str | None:
    """STT_PROVIDER=openai names no server: every utterance would fail, so refuse (exit 2)."""
    if settings.stt_enabled and settings.stt_provider == "openai" and not settings.stt_base_url:
        return (
            "Refusing to start: STT_PROVIDER=openai needs STT_BASE_URL, the transcription "
            "server's OpenAI-compatible /v1 (e.g. http://gpu-box:8000/v1); or set "
            "STT_PROVIDER=local or STT_ENABLED=false."
        )
    return None


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The server's event loop (EVENT_LOOP): uvloop does the per-frame socket, timer and
    callback work in C: about 15% less server CPU per streamed text turn than asyncio's own
    loop (bench/README.md, "Event loop and lean stream"). None: asyncio's default."""
    if settings.event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if settings.event_loop == "uvloop":
            raise SystemExit("EVENT_LOOP=uvloop, but uvloop is not installed.") from None
        return None
    return uvloop.new_event_loop


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


def run_sidecar(settings: Settings, host: str, port: int, parent_pid: int | None) -> int:
    lock = InstanceLock(settings.data_dir)
    try:
        lock.acquire()
    except AlreadyRunning as e:
        print(f"desktopmate: {e}", file=sys.stderr, flush=True)
        return EXIT_UNAVAILABLE
    settings.sidecar_token = SecretStr(secrets.token_urlsafe(32))
    try:
        return asyncio.run(
            serve_forever(settings, host, port, machine=True, parent_pid=parent_pid, sidecar=True),
            loop_factory=loop_factory(settings),
        )
    finally:
        lock.release()


def memory_cleanup(settings: Settings, days: float | None) -> int:
    from server.agent.memory.cleanup import cleanup_once
    from server.agent.memory.hits import MemoryUnavailable

    days = settings.memory_old_after_days if days is None else days
    if days <= 0:
        print("--days must be more than 0", file=sys.stderr)
        return 2
    try:
        moved = asyncio.run(cleanup_once(settings, days))
    except (MemoryUnavailable, RuntimeError) as e:
        print(f"memory cleanup failed: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # the store did not open (MongoDB unreachable): one line, as serve
        failure = start_failure(settings, e)
        print(f"memory cleanup failed: {failure}", file=sys.stderr)
        return failure.code
    print(f"moved {moved} memories not updated for {days:g} days to the old tier")
    return 0


def bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # is TCP, and Nagle would hold small events back for up to one client round trip.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def serve_forever(
    settings: Settings,
    host: str,
    port: int,
    *,
    machine: bool = False,
    parent_pid: int | None = None,
    sidecar: bool = False,
) -> int:
    if uri := secret(settings.mongodb_uri):
        from server.store.mongo_reach import unreachable

        if problem := await unreachable(uri, settings.mongodb_timeout_s):
            print(f"desktopmate: {problem}", file=sys.stderr, flush=True)
            return EXIT_UNAVAILABLE
    try:
        sock = bind(host, port)
    except OSError as e:
        failure = listen_failure(host, port, e)
        print(f"desktopmate: {failure}", file=sys.stderr, flush=True)
        return failure.code
    own_instance_id(settings, sock.getsockname()[1])
    try:
        app = await started_app(settings)
    except Exception as e:
        sock.close()
        failure = start_failure(settings, e)
        print(f"desktopmate: {failure}", file=sys.stderr, flush=True)
        return failure.code
    config = uvicorn_config(
        app,
        settings,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    token = settings.sidecar_token.get_secret_value() if settings.sidecar_token else None
    info = ready_info(host, sock.getsockname()[1], token if sidecar else None)
    server = ReadyServer(config, on_ready=lambda: announce(info, machine=machine))
    if sidecar:

        def parent_gone(_reason: str) -> None:
            server.should_exit = True

        ParentWatch(parent_gone, parent_pid).start()
    await server.serve(sockets=[sock])
    if server.interrupted:
        return EXIT_INTERRUPTED
    if not server.started:  # uvicorn logged why (its lifespan only closes what we started)
        return EXIT_FAILED
    return 0


def own_instance_id(settings: Settings, port: int) -> None:
    """REPLICA_MODE=multi without INSTANCE_ID: this machine's host name and the port, not the
    host name alone. Replicas on one machine share the host name; with one owner name each
    would take the other's live sessions for its own crashed run's (marking them interrupted
    as it starts) and never see a session resumed on the other. Stable across restarts on a
    fixed port; containers differ by host name."""
    if settings.replica_mode == "multi" and not settings.instance_id.strip():
        settings.instance_id = f"{socket.gethostname() or 'local'}:{port}"


async def started_app(settings: Settings) -> Any:
    """The app with its services started before it listens: a store that fails as it opens
    (a MongoDB gone since the pre-flight ping) is one line and an exit status, not a
    traceback from uvicorn's lifespan."""
    from server.app import create_app, start_services  # the heavy import, after the refusals

    app = create_app(settings)  # logging is configured here, before the services log
    app.state.started = await start_services(settings)
    return app


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
        # websockets' sans-I/O protocol (uvicorn 0.54's auto choice), pinned: uvicorn's
        # "websockets" (websockets.legacy) cost more CPU per turn (bench/README.md)
        ws="websockets-sansio",
        **over,
    )


if __name__ == "__main__":
    sys.exit(main())
