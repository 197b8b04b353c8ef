"""GET /v1/ws: authenticate, pick or resume the session, then hand over to Session."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, WebSocket

from server.agent.history_sync import sync_history
from server.auth import Principal, accept_websocket
from server.hub.expiry import end_when_expired
from server.hub.protocol import error_event
from server.hub.session import Session
from server.logging import get_logger
from server.protocols.ws_v1 import WsV1
from server.services import Services

log = get_logger(__name__)
router = APIRouter()


async def _refuse(ws: WebSocket, code: str, message: str, close_code: int) -> None:
    await ws.send_json(error_event(code, message, fatal=True))
    await ws.close(code=close_code, reason=code)


@router.websocket("/v1/ws")
async def ws_endpoint(
    ws: WebSocket,
    persona: str | None = None,
    session_id: str | None = None,
) -> None:
    services: Services = ws.app.state.services
    principal = await accept_websocket(ws)  # the token: ?token=, a subprotocol or a header
    if principal is None:
        return
    user_id = principal.user_id
    limits = services.user_limits
    if not limits.enter(user_id):
        return await _refuse(
            ws,
            "too_many_sessions",
            f"This user already has {limits.max_sessions} sessions open "
            "(WS_MAX_SESSIONS_PER_USER); close one first.",
            4429,
        )
    try:
        await _open_session(ws, services, principal, persona, session_id)
    finally:
        limits.leave(user_id)


def new_session_settings(defaults: dict[str, Any], persona_id: str) -> dict[str, Any]:
    """A new session starts from the user's saved defaults (GET/PUT /v1/settings); every
    protocol that creates sessions starts them so."""
    return {**defaults, "persona": persona_id}


async def _open_session(
    ws: WebSocket,
    services: Services,
    principal: Principal,
    persona: str | None,
    session_id: str | None,
) -> None:
    user_id = principal.user_id
    store = services.store
    resumed = False
    if session_id:
        record = await store.get_session(user_id, session_id)
        if record is None:  # unknown, or someone else's: same answer, no leak
            return await _refuse(ws, "session_not_found", "No such session for this user.", 4404)
        if record.status == "ended":
            return await _refuse(ws, "session_ended", "That session has ended.", 4409)
        pid = persona or record.settings.get("persona") or record.persona_id
        resumed = True
    else:
        defaults = await store.get_user_settings(user_id)
        pid = persona or defaults.get("persona") or services.settings.default_persona
        record = None
    chosen = services.personas.get(pid)
    if chosen is None:
        return await _refuse(ws, "unknown_persona", f"No persona {pid!r}.", 4404)
    if record is None:
        await store.ensure_user(user_id)
        record = await store.create_session(
            user_id, chosen.id, new_session_settings(defaults, chosen.id)
        )
    else:  # a crash may have cut the last turn: the model's history follows the transcript
        synced = await sync_history(services.agent, store, user_id, record.id, record.thread_id)
        if synced.added or synced.removed:
            log.info("history_synced", session_id=record.id, **asdict(synced))
    # This process serves the session now (crash recovery: server/hub/liveness.py).
    await store.claim_session(user_id, record.id, services.instance_id)
    record.status = "active"
    turns = await store.count_messages(user_id, chosen.id, "user")
    session = Session(ws, services, user_id, record, chosen, turns, resumed, WsV1)
    if principal.expires_at is not None:
        session.spawn(
            end_when_expired(session, principal.expires_at + services.settings.jwt_leeway_s)
        )
    log.info("session_open", session_id=record.id, persona=chosen.id, resumed=resumed)
    async with services.takeovers.serving(session):
        await session.run()
