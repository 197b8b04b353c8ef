"""Reminder delivery: each connected session sends its user's reminders as they fall due.

Why per session, sleeping until the next due time: there is nothing to do between
reminders, so no polling loop runs every second. A change made through this process (REST
add or cancel) wakes the user's sessions at once (`ReminderWatchers`); a change made by
another process sharing the database is seen within `REMINDER_CHECK_S`. A reminder that fell
due while the user had no session open is delivered when they next connect. The store's
atomic pending -> delivered update makes one session the winner when a user has several
open, so a reminder is sent once.

Delivery is acknowledged by the socket, not assumed: a session first claims the reminder
(a lease, so no other session sends it meanwhile), sends the event and waits until it was
written to its socket; only then is the reminder marked delivered. A failed attempt (the
connection closed first, the write failed) is recorded with its reason and retried with
back-off, by whichever session of the user is open then; after ``REMINDER_MAX_ATTEMPTS``
failures the reminder is marked ``failed``.

A recurring reminder (daily or weekly) is sent once per occurrence: instead of being closed
it moves on to its next occurrence in the same conditional update that ends this one (the
store's ``advance_reminder`` matches the occurrence's due time), so two replicas can never
both finish it. Occurrences missed while the user was away are sent once, as one; an
occurrence that keeps failing is skipped (its reason kept), not the whole series.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from server.logging import get_logger
from server.reminders import ReminderWatchers, next_occurrence
from server.store.base import ReminderRecord, Store, utcnow

log = get_logger(__name__)


def reminder_event(r: ReminderRecord) -> dict[str, Any]:
    return {"type": "reminder", "id": r.id, "text": r.text, "due_at": r.due_at.isoformat()}


# Sends the reminder to the client (in its protocol's shape) and returns once it was written
# to the socket (True), or False when it could not be (the connection closed first).
SendConfirmed = Callable[[ReminderRecord], Awaitable[bool]]


@dataclass(frozen=True)
class DeliveryPolicy:
    check_s: float = 30.0  # re-read the store at least this often
    max_attempts: int = 3
    backoff_s: float = 5.0  # before the 2nd attempt; doubles for each later one
    lease_s: float = 30.0  # a claim outlives any socket write (WS_SEND_TIMEOUT_S)

    @classmethod
    def from_settings(cls, s: Any) -> DeliveryPolicy:
        return cls(
            check_s=s.reminder_check_s,
            max_attempts=s.reminder_max_attempts,
            backoff_s=s.reminder_retry_backoff_s,
            lease_s=s.ws_send_timeout_s + s.reminder_lease_margin_s,
        )


async def deliver_reminders(
    store: Store,
    watchers: ReminderWatchers,
    user_id: str,
    send: SendConfirmed,
    policy: DeliveryPolicy,
) -> None:
    """Run for the life of a session: send each reminder when it falls due. A store error
    is logged and tried again after ``check_s``; it never ends the session."""
    wake = watchers.watch(user_id)
    try:
        while True:
            wake.clear()
            try:
                wait = await send_due(store, user_id, send, policy)
            except Exception:
                log.exception("reminder_check_failed")
                wait = policy.check_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await wake.wait()
    finally:
        watchers.unwatch(user_id, wake)


async def send_due(
    store: Store, user_id: str, send: SendConfirmed, policy: DeliveryPolicy
) -> float:
    """Deliver every reminder that is due and not claimed or backing off; return the
    seconds until the next one may be."""
    wait = policy.check_s
    for r in await store.list_reminders(user_id, "pending", limit=100):
        now = utcnow()
        ready = max(r.due_at, r.not_before or r.due_at)
        if ready > now:
            wait = min(wait, (ready - now).total_seconds())
            if r.due_at > now:
                break  # the rest are due later still
            continue
        if not await store.claim_reminder(user_id, r.id, now + timedelta(seconds=policy.lease_s)):
            wait = min(wait, policy.lease_s)  # another session has it: look again later
            continue
        await _attempt(store, user_id, r, send, policy)
    return max(wait, 0.01)


async def _attempt(
    store: Store, user_id: str, r: ReminderRecord, send: SendConfirmed, policy: DeliveryPolicy
) -> None:
    try:
        written = await send(r)
        if written is None:  # a protocol that cannot tell whether it was written: it was sent
            written = True
        reason = None if written else "the connection closed before the event was written"
    except asyncio.CancelledError:  # the session is closing: record it, then stop
        await _failed(store, user_id, r, "the session closed before the event was written", policy)
        raise
    except Exception as e:
        reason = f"{type(e).__name__}: {e}"
    # Written: recorded even when the session closes this instant (a client that
    # disconnects right after the event), or the reminder would be sent again.
    if reason is None and r.repeat is not None:
        await asyncio.shield(_advance(store, user_id, r, None))
        log.info("reminder_delivered", reminder_id=r.id, attempt=r.attempts + 1, repeat=True)
    elif reason is None:
        await asyncio.shield(store.close_reminder(user_id, r.id, "delivered"))
        log.info("reminder_delivered", reminder_id=r.id, attempt=r.attempts + 1)
    else:
        await _failed(store, user_id, r, reason, policy)


async def _failed(
    store: Store, user_id: str, r: ReminderRecord, reason: str, policy: DeliveryPolicy
) -> None:
    attempt = r.attempts + 1
    retry_at = None
    if attempt < policy.max_attempts:
        retry_at = utcnow() + timedelta(seconds=policy.backoff_s * 2 ** (attempt - 1))
    if retry_at is None and r.repeat is not None:
        await _advance(store, user_id, r, reason)  # skip this occurrence, keep the series
    else:
        await store.fail_reminder_attempt(user_id, r.id, reason, retry_at)
    log.warning("reminder_attempt_failed", reminder_id=r.id, attempt=attempt, reason=reason)


async def _advance(store: Store, user_id: str, r: ReminderRecord, error: str | None) -> None:
    """End this occurrence of a recurring reminder and move it to the next one after now."""
    assert r.repeat is not None
    next_due = next_occurrence(r.repeat, max(utcnow(), r.due_at))
    if not await store.advance_reminder(user_id, r.id, r.due_at, next_due, error):
        log.warning("reminder_advance_lost", reminder_id=r.id)  # cancelled or done elsewhere
