from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Module readiness (503 when a required module is not ready)")
async def health(services: ServicesDep) -> JSONResponse:
    ok, modules = services.health()
    body = {"status": "ok" if ok else "error", "modules": modules}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/health/details", summary="Module readiness with reasons")
async def health_details(services: ServicesDep, reset: bool = False) -> dict[str, object]:
    ok, modules = services.health()
    body = {
        "status": "ok" if ok else "error",
        "modules": modules,
        "details": services.details,
        "progress": services.status.progress,  # downloads in flight: {module: {file, done, total}}
    }
    loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]  # uvloop | asyncio
    instance = {"instance_id": services.instance_id}  # which replica answered
    if services.liveness.shared:
        instance["instance_id_shared"] = "another live process runs with this INSTANCE_ID"
    lag = services.loop_lag.stats(reset=reset)
    return body | instance | {"loop_lag_ms": lag, "event_loop": loop}
