"""A session resumed while another connection is still replying in it.

That connection (on this server, or on another replica within SESSION_TAKEOVER_CHECK_S)
ends with session_taken_over and stores what it had sent of its reply, cut short. The new
connection waits for that reply before it reads the history it continues from, so the cut
reply keeps its place after the user's message instead of landing after the new
connection's first turn (in the stored transcript and in the model's history)."""

from __future__ import annotations

import asyncio
import time

from server.agent.history_sync import PAGE
from server.services import Services
from server.store.base import MessageRecord, Store

MARGIN_S = 2.0  # the older connection's cancel and store writes, after it heard
POLL_S = 0.05


async def await_handover(services: Services, user_id: str, session_id: str) -> bool:
    """End an older connection to the session in this process now, then wait (at most
    SESSION_TAKEOVER_CHECK_S + 2 s) while the session's newest stored message is the
    user's: a reply being generated elsewhere. False when the wait ran out (the serving
    process died mid-turn: crash recovery keeps the message unanswered)."""
    check_s = services.settings.session_takeover_check_s
    if check_s <= 0:
        return True  # takeovers are off: nobody will store anything for us
    await services.takeovers.end_here(session_id)
    deadline = time.monotonic() + check_s + MARGIN_S
    start = 0
    while True:
        newest, start = await _newest(services.store, user_id, session_id, start)
        if newest is None or newest.role != "user":
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_S)


async def _newest(
    store: Store, user_id: str, session_id: str, start: int
) -> tuple[MessageRecord | None, int]:
    """The session's newest stored message, read from index ``start`` on, and its index."""
    offset, newest = start, None
    while True:
        page = await store.list_messages(user_id, session_id, limit=PAGE, offset=offset)
        if page:
            newest = page[-1]
        if len(page) < PAGE:
            return newest, offset + max(len(page) - 1, 0)
        offset += PAGE
