"""GET /v1/ws: authenticate, pick or resume the session, then hand over to Session."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from server.auth import accept_websocket
from server.hub.expiry import end_when_expired
from server.hub.opening import SessionRefused, open_session, user_slot
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
    try:
        with user_slot(services, user_id):
            o = await open_session(services, user_id, persona, session_id)
            session = Session(
                ws, services, user_id, o.record, o.persona, o.user_turns, o.resumed, WsV1
            )
            if principal.expires_at is not None:
                session.spawn(
                    end_when_expired(session, principal.expires_at + services.settings.jwt_leeway_s)
                )
            log.info(
                "session_open", session_id=o.record.id, persona=o.persona.id, resumed=o.resumed
            )
            async with services.takeovers.serving(session):
                await session.run()
    except SessionRefused as e:
        await _refuse(ws, e.code, e.message, e.close_code)
