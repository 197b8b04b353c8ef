"""A session whose credentials expire (a JWT's exp) ends with a fatal `auth_expired` error
and close 4401, but never in the middle of a reply: the current one completes first."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.hub.session import Session

AUTH_EXPIRED_CLOSE = 4401


async def end_when_expired(session: Session, expires_at: float) -> None:
    """Run as one of the session's tasks (cancelled when it closes first)."""
    await asyncio.sleep(max(0.0, expires_at - time.time()))
    while (r := session.response) is not None and r.task is not None and not r.task.done():
        await asyncio.wait({r.task})  # a reply started meanwhile is waited for too
    await session.end_with_error(
        "auth_expired",
        "Your sign-in expired. Connect again with a fresh token to continue this session.",
        AUTH_EXPIRED_CLOSE,
    )
