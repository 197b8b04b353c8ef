"""`server.status` events for one session: the modules' states, reasons and download progress,
sent whenever they change (latest wins), and once at connect while something is loading."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.services import Services


async def follow_status(
    services: Services, send: Callable[[dict[str, Any]], Awaitable[None]]
) -> None:
    changed = services.status.subscribe()
    try:
        if "loading" in services.modules.values():
            await send(services.status_event())
        while True:
            await changed.wait()
            changed.clear()
            await send(services.status_event())
    finally:
        services.status.unsubscribe(changed)
