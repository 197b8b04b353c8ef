"""The DesktopMatePlus v1 protocol at ws /v1/chat/stream (docs/protocol-dmp.md), as its
clients speak it (desktop-homunculus's desktopmate-bridge, the Unity Mate-EnginePlus).

JSON text frames only. `authorize` names the user; each `chat_message` is a typed turn in
one of our ordinary sessions (named by `session_id`, or new); the reply streams as
`stream_start`, `stream_token`s, one `tts_chunk` per sentence (a whole WAV with its
expression and mouth keyframes) and `stream_end` once it is stored. Translation only: the
turn, its limits and its storage are the session core's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from server.auth import AuthError, Principal, authenticator
from server.hub.expiry import end_when_expired
from server.hub.opening import SessionRefused, open_session, user_slot
from server.hub.outbound import SlowConsumer
from server.hub.session import Session
from server.logging import get_logger
from server.protocols.common import claimed_user, local_mode, persona_for
from server.protocols.dmp_events import DmpEvents
from server.protocols.dmp_rest import remember_owner
from server.protocols.dmp_wire import (
    AUTH_FAILED,
    NOTHING_TO_INTERRUPT,
    PING_TIMEOUT,
    ChatMessage,
    error,
    message,
)
from server.services import Services

log = get_logger(__name__)
router = APIRouter()


class Connection:
    """One socket before and during its session: who it is, the heartbeat, and the
    session core once the first chat_message named the conversation."""

    def __init__(self, ws: WebSocket, services: Services) -> None:
        self.ws = ws
        self.services = services
        self.connection_id = str(uuid.uuid4())
        self.auth = authenticator(ws)
        self.principal: Principal | None = None  # with auth configured: from authorize
        self.user_id: str | None = None
        self.authorized = False
        self.session: Session | None = None
        self.last_pong = time.monotonic()
        self._direct = asyncio.Lock()

    async def send(self, event: dict[str, Any]) -> None:
        """Through the session's bounded queue once it exists; directly before."""
        if self.session is not None:
            await self.session.send(event)
            return
        async with self._direct:
            await self.ws.send_text(json.dumps(event, ensure_ascii=False))

    # --- heartbeat --------------------------------------------------------------------
    async def heartbeat(self) -> None:
        """`ping` every DMP_PING_INTERVAL_S; no `pong` within DMP_PONG_TIMEOUT_S: 4000."""
        s = self.services.settings
        while True:
            await asyncio.sleep(s.dmp_ping_interval_s)
            sent = time.monotonic()
            await self.send(message("ping"))
            await asyncio.sleep(s.dmp_pong_timeout_s)
            if self.last_pong < sent:
                log.info("dmp_ping_timeout", connection_id=self.connection_id)
                if self.session is not None:
                    self.session.close(PING_TIMEOUT, "Ping timeout")
                else:
                    with contextlib.suppress(Exception):
                        await self.ws.close(code=PING_TIMEOUT, reason="Ping timeout")
                return

    # --- before the first chat_message ------------------------------------------------------
    async def serve(self) -> None:
        beat = asyncio.create_task(self.heartbeat())
        try:
            first = await self._until_first_chat()
            if first is not None:
                await self._run_session(first)
        except (WebSocketDisconnect, RuntimeError, SlowConsumer):
            pass
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _until_first_chat(self) -> tuple[ChatMessage, str] | None:
        """Handle frames until a chat_message can start a session; None: the socket ended."""
        while True:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return None
            obj = await self.parse(msg)
            if obj is None:
                continue
            kind = obj["type"]
            if kind == "authorize":
                if not await self.authorize(obj):
                    return None
            elif kind == "pong":
                self.last_pong = time.monotonic()
            elif not self.authorized:
                await self.send(error("Authentication required"))
            elif kind == "chat_message":
                chat = await self.chat_message(obj)
                if chat is not None:
                    return chat
            elif kind == "interrupt_stream":
                await self.send(error("No active turns to interrupt", NOTHING_TO_INTERRUPT))
            else:
                await self.send(error(f"Unsupported message type: {kind}"))

    async def parse(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        """A frame as a JSON object with a type, or None after telling the client why not."""
        text = msg.get("text")
        if text is None:
            await self.send(error("Binary frames are not part of this protocol."))
            return None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            await self.send(error(f"Invalid JSON format: {e.msg}"))
            return None
        if not isinstance(obj, dict) or not obj.get("type"):
            await self.send(error("Missing message type"))
            return None
        if not isinstance(obj["type"], str):
            await self.send(error("Invalid message format"))
            return None
        return obj

    async def authorize(self, obj: dict[str, Any]) -> bool:
        token = obj.get("token")
        user_id = obj.get("user_id")
        if not isinstance(token, str) or (user_id is not None and not isinstance(user_id, str)):
            await self.send(error("Invalid message format"))
            return True
        try:
            user: str | None = None
            if not self.auth.local or user_id:
                self.principal = await claimed_user(self.auth, token, user_id)
                user = self.principal.user_id
            if self.user_id is not None and user is not None and user != self.user_id:
                raise AuthError("This connection already speaks for another user.")
        except AuthError as e:
            await self.send(message("authorize_error", error=str(e)))
            with contextlib.suppress(Exception):
                await self.ws.close(code=AUTH_FAILED, reason="Authentication failed")
            return False
        self.user_id = self.user_id or user
        self.authorized = True
        await self.send(message("authorize_success", connection_id=self.connection_id))
        return True

    async def chat_message(self, obj: dict[str, Any]) -> tuple[ChatMessage, str] | None:
        """A valid chat_message and the user it speaks for, or None after an error."""
        try:
            chat = ChatMessage.model_validate(obj)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            await self.send(error(f"Invalid chat message format: {where}: {first['msg']}"))
            return None
        try:
            if self.auth.local:
                user = (await claimed_user(self.auth, None, chat.user_id)).user_id
            else:  # the token given at authorize decides
                user = self.user_id or ""
                if chat.user_id != user:
                    raise AuthError("user_id does not match the user of this token.")
        except AuthError as e:
            await self.send(error(str(e)))
            return None
        if self.user_id is not None and user != self.user_id:
            await self.send(error("user_id does not match the user of this connection."))
            return None
        return chat, user

    # --- the session --------------------------------------------------------------------
    async def _run_session(self, first: tuple[ChatMessage, str]) -> None:
        chat, user = first
        self.user_id = user
        try:
            with user_slot(self.services, user):
                opened = await self.open(chat)
                if opened is None:
                    return await self._after_refusal()
                events: DmpEvents | None = None

                def protocol(s: Session) -> DmpEvents:
                    nonlocal events
                    events = DmpEvents(s, self, chat)
                    return events

                self.session = Session(
                    self.ws,
                    self.services,
                    user,
                    opened.record,
                    opened.persona,
                    opened.user_turns,
                    opened.resumed,
                    protocol,
                )
                expires = self.principal.expires_at if self.principal else None
                if expires is not None:
                    leeway = self.services.settings.jwt_leeway_s
                    self.session.spawn(end_when_expired(self.session, expires + leeway))
                log.info("dmp_session_open", session_id=opened.record.id, user_id=user)
                async with self.services.takeovers.serving(self.session):
                    await self.session.run()
        except SessionRefused as e:
            await self.send(error(e.message))

    async def _after_refusal(self) -> None:
        """The first chat_message named a session we cannot open: keep listening."""
        first = await self._until_first_chat()
        if first is not None:
            await self._run_session(first)

    async def open(self, chat: ChatMessage) -> Any:
        """The session a chat_message names (its own user's only), or None after an error."""
        assert self.user_id is not None
        pid = persona_for(self.services, chat.persona_id, chat.agent_id)
        try:
            opened = await open_session(self.services, self.user_id, pid, chat.session_id)
        except SessionRefused as e:
            await self.send(error(e.message))
            return None
        if local_mode(self.services):
            remember_owner(opened.record.id, self.user_id)
        return opened


@router.websocket("/v1/chat/stream")
async def dmp_endpoint(ws: WebSocket) -> None:
    await ws.accept()
    await Connection(ws, ws.app.state.services).serve()
