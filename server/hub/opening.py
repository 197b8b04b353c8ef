"""Picking the session a connection talks in, for every protocol: a new one, or one of the
user's own sessions resumed. One place decides ownership and status, so no protocol can
reach another user's session or reopen an ended one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from server.agent.history_sync import sync_history
from server.hub.handover import await_handover
from server.logging import get_logger
from server.personas import Persona
from server.services import Services
from server.store.base import SessionRecord


def new_session_settings(defaults: dict[str, Any], persona_id: str) -> dict[str, Any]:
    """A new session starts from the user's saved defaults (GET/PUT /v1/settings); every
    protocol that creates sessions starts them so."""
    return {**defaults, "persona": persona_id}


log = get_logger(__name__)


class SessionRefused(Exception):
    """Why the session cannot be opened: a stable code, a message and a close code."""

    def __init__(self, code: str, message: str, close_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


@dataclass
class Opened:
    record: SessionRecord
    persona: Persona
    user_turns: int
    resumed: bool


async def open_session(
    services: Services, user_id: str, persona_id: str | None, session_id: str | None
) -> Opened:
    """``_open_session``, with a store that fails (MongoDB gone: every replica's shared
    store) as a refusal the client can act on (try again later, 1013) on every protocol,
    not a socket dropped without a close frame and a traceback in the log."""
    try:
        return await _open_session(services, user_id, persona_id, session_id)
    except SessionRefused:
        raise
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0].split(" (configured timeouts")[0]
        log.warning("session_open_failed", error=f"{type(e).__name__}: {reason}"[:300])
        raise SessionRefused(
            "database_unavailable",
            "The server's database did not answer, so the session could not be opened; "
            "try again shortly.",
            1013,
        ) from None


async def _open_session(
    services: Services, user_id: str, persona_id: str | None, session_id: str | None
) -> Opened:
    """Resume ``session_id`` (the user's own, not ended) or create a new session with
    ``persona_id`` (else the user's saved default, else DEFAULT_PERSONA), starting from the
    user's saved settings; the session is marked active."""
    store = services.store
    resumed = False
    record: SessionRecord | None = None
    if session_id:
        record = await store.get_session(user_id, session_id)
        if record is None:  # unknown, or someone else's: same answer, no leak
            raise SessionRefused("session_not_found", "No such session for this user.", 4404)
        if record.status == "ended":
            raise SessionRefused("session_ended", "That session has ended.", 4409)
        pid = persona_id or record.settings.get("persona") or record.persona_id
        resumed = True
        defaults: dict[str, Any] = {}
    else:
        defaults = await store.get_user_settings(user_id)
        pid = persona_id or defaults.get("persona") or services.settings.default_persona
    chosen = services.personas.get(pid)
    if chosen is None:
        raise SessionRefused("unknown_persona", f"No persona {pid!r}.", 4404)
    if record is None:
        await store.ensure_user(user_id)
        record = await store.create_session(
            user_id, chosen.id, new_session_settings(defaults, chosen.id)
        )
        # This process serves the session now (crash recovery: server/hub/liveness.py).
        await store.claim_session(user_id, record.id, services.instance_id)
    else:
        was_live = record.status == "active"
        await store.claim_session(user_id, record.id, services.instance_id)  # heard there
        if was_live and not await await_handover(services, user_id, record.id):
            log.info("handover_timed_out", session_id=record.id)
        # a crash may have cut the last turn: the model's history follows the transcript
        synced = await sync_history(services.agent, store, user_id, record.id, record.thread_id)
        if synced.added or synced.removed:
            log.info("history_synced", session_id=record.id, **asdict(synced))
    record.status = "active"
    turns = await store.count_messages(user_id, chosen.id, "user")
    return Opened(record, chosen, turns, resumed)


@contextmanager
def user_slot(services: Services, user_id: str) -> Iterator[None]:
    """Count one open connection of this user (WS_MAX_SESSIONS_PER_USER), for its life."""
    limits = services.user_limits
    if not limits.enter(user_id):
        raise SessionRefused(
            "too_many_sessions",
            f"This user already has {limits.max_sessions} sessions open "
            "(WS_MAX_SESSIONS_PER_USER); close one first.",
            4429,
        )
    try:
        yield
    finally:
        limits.leave(user_id)
