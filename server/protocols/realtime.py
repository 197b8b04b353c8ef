"""The OpenAI Realtime protocol (GA event names) at ws /v1/realtime (docs/protocol-realtime.md).

`AsyncOpenAI(base_url="http://HOST:PORT/v1", api_key=TOKEN).realtime.connect(model=PERSONA)`
works unchanged: the SDK opens /v1/realtime?model=PERSONA with `Authorization: Bearer TOKEN`.
Audio is PCM16 24 kHz both ways (input resampled to the 16 kHz our VAD and STT take). User
input (typed items, committed or VAD-detected speech) becomes our ordinary turns; the reply
streams as Realtime response events. Every client event we do not support gets a Realtime
`error`. Translation only: turn logic, limits and storage are the session core's.

Here: the socket, the dispatch of client events and the session's own events. The client's
events are realtime_input.py (response.create: realtime_response_create.py), a reply's
events realtime_replies.py, the user's speech realtime_transcripts.py, the shapes
realtime_wire.py."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket
from pydantic_core import from_json

from server.auth import AuthError, AuthUnavailable, authenticator, credentials
from server.hub.events import SessionEvents, send_reminder
from server.hub.expiry import end_when_expired
from server.hub.opening import SessionRefused, open_session, user_slot
from server.hub.protocol import ProtocolError
from server.hub.session import Session
from server.logging import get_logger
from server.protocols.common import persona_for
from server.protocols.realtime_input import HANDLERS, RealtimeInput
from server.protocols.realtime_replies import RealtimeReplies, StartingTurn
from server.protocols.realtime_session import ParamError
from server.protocols.realtime_transcripts import RealtimeTranscripts
from server.protocols.realtime_wire import (
    SUPPORTED,
    Resampler,
    assistant_item,
    error_body,
    error_frame,
    event_id,
    session_shape,
)

if TYPE_CHECKING:
    from server.agent.graph import ClientCall
    from server.store.base import ReminderRecord

log = get_logger(__name__)
router = APIRouter()


KNOWN_ITEMS = 200  # conversation.item.retrieve answers for the latest this many items


class RealtimeEvents(RealtimeInput, RealtimeReplies, RealtimeTranscripts, SessionEvents):
    awaits_playback = False  # Realtime clients play audio themselves (truncate tells us)

    def __init__(self, session: Session) -> None:
        self.s = session
        self._ids = itertools.count(1)
        self.client_event_id: str | None = None
        self.pending: list[tuple[str, str]] = []  # user items waiting for response.create
        self.awaiting: StartingTurn | None = None  # the user item of the turn starting
        self.resample = Resampler()
        self.half_sample = b""
        self.partials: dict[str, str] = {}
        self.items: dict[int, str] = {}  # response number -> assistant item id
        self.done_items: dict[int, str] = {}  # the same, for the last finished response
        self.last_item: str | None = None
        self.before: dict[str, str | None] = {}  # item id -> the item before it (for .done)
        # a transcript's partial waits until its item was committed (the client knows it)
        self.committed: set[str] = set()
        self.early: dict[str, str] = {}
        # function calling: the client's functions, the calls waiting for their output,
        # the outputs waiting for response.create, each response's function_call items
        self.tools: list[dict[str, Any]] = []
        self.tool_choice = "auto"
        self.open_calls: dict[str, ClientCall] = {}
        self.answers: list[tuple[ClientCall, str]] = []
        self.one_response: dict[str, Any] = {}
        self.known: dict[str, dict[str, Any]] = {}  # the latest items, as item.done said
        self.stored: dict[str, str] = {}  # item id -> stored message id (item.delete)
        self.calls: dict[int, list[dict[str, Any]]] = {}
        if session.config["output_audio"] == "mp3":  # Realtime audio is PCM16 24 kHz
            session.config["output_audio"] = "pcm16"
        if "turn_detection" not in session.record.settings:  # Realtime's default
            session.config["turn_detection"] = {"type": "server_vad"}
        self._sync_turn_detection()

    # --- helpers ----------------------------------------------------------------------
    async def _send(self, type_: str, **fields: Any) -> None:
        await self.s.send({"type": type_, "event_id": event_id(), **fields})
        if type_ == "conversation.item.done":  # for conversation.item.retrieve
            self.known[fields["item"]["id"]] = fields["item"]
            while len(self.known) > KNOWN_ITEMS:
                self.known.pop(next(iter(self.known)))

    def _audio_on(self) -> bool:
        return self.s.config["output_audio"] != "none" and self.s.services.tts is not None

    def _link(self, item_id: str) -> str | None:
        """The item is now the conversation's last: the one before it, which its
        conversation.item.added (and .done, through ``before``) name."""
        previous, self.last_item = self.last_item, item_id
        self.before[item_id] = previous
        return previous

    def _sync_turn_detection(self) -> None:
        td = self.s.config["turn_detection"]
        self.voice_starts_turns = td.get("type") in ("server_vad", "semantic") and td.get(
            "create_response", True
        )

    # --- inbound ----------------------------------------------------------------------
    async def read(self) -> None:
        s = self.s
        async for msg in s.frames():
            self.client_event_id = None
            try:
                await self.on_frame(msg)
            except ProtocolError as e:
                param = {"param": e.param} if isinstance(e, ParamError) else None
                await self.error(e.code, e.message, e.fatal, param)
            except Exception:  # a bug must not end the session: report it, keep reading
                s.log.exception("realtime_event_failed")
                await self.error(
                    "server_error", "The event failed because of a server error.", False
                )

    async def on_frame(self, msg: dict[str, Any]) -> None:
        text = msg.get("text")
        if text is None:
            raise ProtocolError("invalid_request_error", "Send JSON text frames, not binary.")
        head = text[:200]
        self.s.check_text_size(
            text, "input_audio_buffer.append" in head or "conversation.item.create" in head
        )
        try:
            obj = from_json(text)
        except ValueError as e:
            raise ProtocolError("invalid_json", f"The frame is not valid JSON: {e}.") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise ProtocolError("invalid_request_error", "An event is a JSON object with a type.")
        eid = obj.get("event_id")
        self.client_event_id = eid if isinstance(eid, str) else None
        handler = HANDLERS.get(obj["type"])
        if handler is None:
            raise ProtocolError(
                "unsupported_event",
                f"{obj['type']!r} is not supported by this server. Supported: {SUPPORTED}.",
            )
        await handler(self, obj)

    # --- outbound ---------------------------------------------------------------------
    async def session_created(self) -> None:
        await self._send(
            "session.created", session=session_shape(self.s, self.tools, self.tool_choice)
        )

    async def session_updated(self) -> None:
        await self._send(
            "session.updated", session=session_shape(self.s, self.tools, self.tool_choice)
        )

    async def session_ended(self, report_url: str) -> None:
        """No such Realtime event: the socket closes."""

    async def analysis(self, event: dict[str, Any], *, droppable: bool = False) -> None:
        """No Realtime event for perception; the persona still perceives it."""

    async def reminder(self, r: ReminderRecord) -> bool:
        """A due reminder: an assistant message item in the conversation, between replies;
        True once its conversation.item.done was written."""
        item_id = f"item_reminder_{r.id}"
        item = assistant_item(item_id, [{"type": "output_text", "text": r.text}], "completed")

        def frames() -> list[dict[str, Any]]:
            previous, self.last_item = self.last_item, item_id
            return [
                {"type": t, "event_id": event_id(), "previous_item_id": previous, "item": item}
                for t in ("conversation.item.added", "conversation.item.done")
            ]

        return await send_reminder(self.s, frames, between_replies=True)

    async def warning(self, code: str, message: str) -> None:
        self.s.log.info("realtime_warning_not_sent", code=code)

    async def error(
        self, code: str, message: str, fatal: bool, extra: dict[str, Any] | None = None
    ) -> None:
        body = error_body(code, message, self.client_event_id) | (extra or {})
        await self._send("error", error=body)


@router.websocket("/v1/realtime")
async def realtime_endpoint(
    ws: WebSocket, model: str | None = None, session_id: str | None = None
) -> None:
    """The token: `Authorization: Bearer` (the SDK's api_key), the subprotocol
    `openai-insecure-api-key.<token>` (browsers) or ?token=. Refusals are Realtime errors."""
    services = ws.app.state.services
    token, carrier = credentials(ws)
    offered = ws.scope.get("subprotocols") or []
    chosen = "realtime" if "realtime" in offered else carrier
    try:
        principal = await authenticator(ws).authenticate(token)
    except AuthError as e:
        unavailable = isinstance(e, AuthUnavailable)
        await ws.accept(subprotocol=chosen)
        await ws.send_text(
            error_frame("auth_unavailable" if unavailable else "invalid_api_key", str(e))
        )
        await ws.close(code=1013 if unavailable else 4401)
        return
    await ws.accept(subprotocol=chosen)
    user = principal.user_id
    pid = persona_for(services, model)
    try:
        with user_slot(services, user):
            o = await open_session(services, user, pid, session_id)
            session = Session(
                ws, services, user, o.record, o.persona, o.user_turns, o.resumed, RealtimeEvents
            )
            if principal.expires_at is not None:
                leeway = services.settings.jwt_leeway_s
                session.spawn(end_when_expired(session, principal.expires_at + leeway))
            log.info("realtime_session_open", session_id=o.record.id, persona=o.persona.id)
            async with services.takeovers.serving(session):  # resumed elsewhere: ends here
                await session.run()
    except SessionRefused as e:
        await ws.send_text(error_frame(e.code, e.message))
        await ws.close(code=e.close_code, reason=e.code)
