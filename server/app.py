"""The FastAPI application: REST routers, the WebSocket hub and the studio page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from server import __version__
from server.api import (
    chat,
    health,
    memories,
    personas,
    reminders,
    sessions,
    setup,
    tasks,
    usage,
    voice,
)
from server.api.analyze_face_voice import router as analyze_face_voice_router
from server.api.analyze_screen import router as analyze_screen_router
from server.api.approvals import router as approvals_router
from server.api.jsonio import SafeJSONResponse, StrictJSONBody
from server.api.proactive import router as proactive_router
from server.api.reports import router as reports_router
from server.api.settings import router as user_settings_router
from server.api.store_errors import StoreFailures
from server.auth import Authenticator
from server.config import Settings
from server.hub import endpoint
from server.logging import configure_logging, get_logger
from server.protocols import dmp, dmp_rest, realtime
from server.security import WebPolicy, WebSecurityMiddleware
from server.services import Services

log = get_logger(__name__)


async def start_services(settings: Settings) -> Services:
    """The services, started; on failure what did start is released (threads, store) and
    the exception raised: a failed start must exit, not hang a sidecar whose parent waits
    for its ready line."""
    services = Services(settings)
    try:
        await services.start()
    except BaseException:
        await services.close()
        raise
    return services


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(
        settings.log_level,
        settings.log_format,
        settings.log_file,
        settings.log_max_bytes,
        settings.log_backup_count,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `desktopmate serve` starts the services before it listens (app.state.started)
        services = getattr(app.state, "started", None) or await start_services(settings)
        app.state.services = services
        try:
            yield
        finally:
            await services.close()

    # /docs and /redoc from the Swagger UI and ReDoc assets fastapi-offline ships (no CDN),
    # under /static-offline-docs.
    app: FastAPI = FastAPIOffline(
        title="DesktopMate-Plus",
        version=__version__,
        description="Real-time persona companion server. WebSocket protocol: docs/protocol.md.",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.add_middleware(StoreFailures)  # innermost: sees a route's store failure first
    app.add_middleware(StrictJSONBody)
    app.state.auth = Authenticator(settings)  # the one token resolver (REST and WebSockets)
    policy = WebPolicy.from_settings(settings)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=policy.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    # Added last, so it runs first: a foreign Host or Origin never reaches CORS or a route.
    app.add_middleware(WebSecurityMiddleware, policy=policy)

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> SafeJSONResponse:
        log.exception("request_failed", path=request.url.path)
        return SafeJSONResponse({"detail": "Internal server error."}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> SafeJSONResponse:
        errs = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()[:10]
        ]
        return SafeJSONResponse({"detail": errs}, status_code=422)

    for r in (
        health.router,
        personas.router,
        sessions.router,
        usage.router,
        setup.router,
        user_settings_router,
        chat.router,
        analyze_screen_router,
        voice.router,
        analyze_face_voice_router,
        reports_router,
        reminders.router,
        proactive_router,
        approvals_router,
        tasks.router,
        tasks.extra_router,
        memories.router,
        endpoint.router,
        dmp.router,
        dmp_rest.router,
        realtime.router,
    ):
        app.include_router(r)

    @app.get("/v1", include_in_schema=False)
    async def v1_root() -> None:
        raise HTTPException(404, "See /docs for the API.")

    if settings.static_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.static_dir, html=True), name="static")
    return app
