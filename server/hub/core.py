"""The protocol-independent core of a live session: state, settings and the inbound
limits, over the bounded outbound queue (hub/outbound.py). A wire protocol
(server/protocols/) reads client frames and calls the core; the core reports what happens
through the protocol's `SessionEvents`, which turns each happening into that protocol's
event shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from server.hub.limits import MessageLimiter
from server.hub.outbound import OutboundQueue, SlowConsumer
from server.hub.protocol import ProtocolError
from server.hub.status_feed import follow_status
from server.logging import get_logger
from server.personas import Persona
from server.store.base import SessionRecord, utcnow

if TYPE_CHECKING:
    from server.hub.events import SessionEvents
    from server.services import Services

log = get_logger(__name__)

OUTPUT_RATE = 24_000


class SessionCore(OutboundQueue):
    """State, settings and limits over the outbound queue; `events` speaks the wire
    protocol."""

    events: SessionEvents

    def __init__(
        self,
        ws: WebSocket,
        services: Services,
        user_id: str,
        record: SessionRecord,
        persona: Persona,
        user_turns: int,
        resumed: bool,
    ) -> None:
        super().__init__(ws, services.settings)
        self.services = services
        self.user_id = user_id
        self.record = record
        self.persona = persona
        self.user_turns = user_turns
        self.resumed = resumed
        self.config = self._config_of(record)
        self.paused = record.status == "paused"
        self._tasks: set[asyncio.Task[Any]] = set()
        self.limiter = MessageLimiter(
            self.settings.ws_max_messages_per_s,
            services.user_limits.bucket(user_id),
            self._rate_limited,
            self.spawn,
        )
        self.log = log.bind(session_id=record.id)

    # --- lifecycle --------------------------------------------------------------------
    async def run(self) -> None:
        from server.hub.reminders import DeliveryPolicy, deliver_reminders

        writer = asyncio.create_task(self._writer())
        reader = asyncio.create_task(self._read_until_closed())
        closed = asyncio.create_task(self._closed.wait())
        try:
            await self.events.session_created()
            await self.on_started()
            self.spawn(follow_status(self.services, self.events.server_status))
            self.spawn(
                deliver_reminders(
                    self.services.store,
                    self.services.reminder_watchers,
                    self.user_id,
                    self.events.reminder,
                    DeliveryPolicy.from_settings(self.settings),
                )
            )
            # Ends on disconnect, session.end, a fatal error or a slow consumer. A slow
            # consumer's socket cannot take even a close frame, so we never write to it.
            await asyncio.wait({reader, closed}, return_when=asyncio.FIRST_COMPLETED)
        except SlowConsumer:
            pass
        finally:
            reader.cancel()
            closed.cancel()
            await self.on_closing()
            for t in list(self._tasks):
                t.cancel()
            await self._shutdown_writer(writer)
            if self.record.status == "active":
                await self.services.store.update_session(
                    self.user_id, self.record.id, status="paused"
                )
            self.log.info("session_closed", dropped_events=self.dropped_events)

    async def on_started(self) -> None:
        """Hook: session.created is out (pending approvals are asked again here)."""

    async def on_closing(self) -> None:
        """Hook: the connection is closing (the response and perception stop here)."""

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- warnings and errors ----------------------------------------------------------
    async def warn(self, code: str, message: str) -> None:
        await self.events.warning(code, message)

    async def error(self, code: str, message: str, *, fatal: bool = False) -> None:
        await self.events.error(code, message, fatal)

    async def end_with_error(self, code: str, message: str, close_code: int) -> None:
        """A fatal error ends the session (e.g. auth_expired): the event, then the close."""
        await self.error(code, message, fatal=True)
        self.close(close_code, code)

    async def taken_over(self, code: str, message: str, close_code: int) -> None:
        """Another connection serves this session now: end this one without touching the
        stored status (it is the new connection's)."""
        self.record.status = "taken_over"
        await self.end_with_error(code, message, close_code)

    # --- inbound limits ---------------------------------------------------------------
    async def _read_until_closed(self) -> None:
        try:
            await self.events.read()
        except (WebSocketDisconnect, RuntimeError):  # RuntimeError: receive after disconnect
            pass
        finally:
            self._closed.set()

    def admit(self) -> bool:
        """Message limits for one inbound frame (a dropped one is reported later, once)."""
        return self.limiter.allow()

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """The client's frames the message limits admit, until it leaves or the session
        closes: the one read loop every protocol layer iterates."""
        while not self.closed:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if self.admit():
                yield msg

    async def _rate_limited(self, dropped: int, which: str) -> None:
        s = self.settings
        limit = (
            f"{s.ws_max_messages_per_s:g} per second on one connection"
            if which == "connection"
            else f"{s.ws_user_max_messages_per_s:g} per second for all of a user's connections"
        )
        await self.events.error(
            "rate_limited",
            f"Too many messages: the limit is {limit}. {dropped} were dropped.",
            False,
            {"dropped": dropped, "limit": which},
        )

    def check_binary_size(self, data: bytes) -> None:
        if len(data) > self.settings.ws_max_binary_bytes:
            raise ProtocolError(
                "message_too_large",
                f"Binary frames are limited to {self.settings.ws_max_binary_bytes} bytes.",
            )
        if not data:
            raise ProtocolError("invalid_frame", "Empty binary frame.")

    def check_text_size(self, text: str, may_carry_image: bool) -> None:
        """Text frames are small, except those carrying a base64 JPEG: those may be as large
        as a binary frame (+1/3)."""
        size = len(text.encode())
        s = self.settings
        if size > max(s.ws_max_text_bytes, s.ws_max_image_text_bytes) or (
            size > s.ws_max_text_bytes and not may_carry_image
        ):
            raise ProtocolError(
                "message_too_large",
                f"Text frames are limited to {s.ws_max_text_bytes} bytes "
                f"(input_image: {s.ws_max_image_text_bytes}).",
            )

    # --- settings and state -------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        fmt = self.config["output_audio"]
        return {
            "id": self.record.id,
            "thread_id": self.record.thread_id,
            "user_id": self.user_id,
            "status": "paused" if self.paused else "active",
            "resumed": self.resumed,
            "persona": {"id": self.persona.id, "name": self.persona.name},
            "input_audio": {"format": "pcm16", "rate": 16000},
            "output_audio": {"format": fmt, "rate": OUTPUT_RATE if fmt != "none" else None},
            "voice": self.config["voice"] or self.persona.tts_voice,
            "instructions": self.config["instructions"],
            "instructions_mode": self.config["instructions_mode"],
            "temperature": self.config["temperature"],
            "max_tokens": self.config["max_tokens"],
            "turn_detection": self.config["turn_detection"],
        }

    async def update_settings(self, changes: dict[str, Any]) -> None:
        """Apply and store new session settings (a persona id switches the persona)."""
        if "persona" in changes:
            persona = self.services.personas.get(changes.pop("persona"))
            if persona is None:
                raise ProtocolError("unknown_persona", "No persona with that id.")
            if persona.id != self.persona.id:
                self.persona = persona
                self.user_turns = await self.services.store.count_messages(
                    self.user_id, persona.id, "user"
                )
        self.config.update(changes)
        self.on_config_changed(changes)
        await self.config_applied()
        store = self.services.store
        # Keys the session does not own (a client's metadata, set over REST) stay as stored.
        current = await store.get_session(self.user_id, self.record.id)
        kept = current.settings if current is not None else {}
        stored = {**kept, **self.config, "persona": self.persona.id}
        await store.update_session(self.user_id, self.record.id, settings=stored)
        await self.events.session_updated()

    def _config_of(self, record: SessionRecord) -> dict[str, Any]:
        """Session settings: the defaults, then what the session stored."""
        return {
            "voice": None,
            "instructions": None,
            "instructions_mode": "append",
            "temperature": None,
            "max_tokens": None,
            "output_audio": self.settings.default_output_audio,
            "turn_detection": {"type": self.settings.turn_detection},
        } | {k: v for k, v in record.settings.items() if k not in ("persona", "metadata")}

    async def switch_session(
        self, record: SessionRecord, persona: Persona, user_turns: int, resumed: bool
    ) -> None:
        """Go on in another session of the same user on the same connection (a client that
        names the conversation per message switched it): the current one is left paused."""
        await self.cancel_response()
        await self.on_ending()
        if self.record.status == "active":
            self.record.status = "paused"
            await self.services.store.update_session(self.user_id, self.record.id, status="paused")
        self.record, self.persona, self.user_turns = record, persona, user_turns
        self.resumed = resumed
        self.paused = record.status == "paused"
        self.config = self._config_of(record)
        self.on_config_changed(dict(self.config))
        self.log = log.bind(session_id=record.id)

    def on_config_changed(self, changes: dict[str, Any]) -> None:
        """Hook: pipelines that depend on session settings follow them."""

    async def config_applied(self) -> None:
        """Hook: what the new settings end is announced (before session.updated)."""

    async def pause(self) -> None:
        await self.cancel_response()
        self.paused = True
        self.record.status = "paused"
        await self.services.store.update_session(self.user_id, self.record.id, status="paused")
        await self.events.session_updated()

    async def resume(self) -> None:
        self.paused = False
        self.record.status = "active"
        await self.services.store.update_session(self.user_id, self.record.id, status="active")
        await self.events.session_updated()

    async def end(self) -> None:
        """End the session for good: stored before the client hears it ended."""
        await self.cancel_response()
        await self.on_ending()  # timelines land before the session counts as ended
        self.record.status = "ended"
        await self.services.store.update_session(
            self.user_id, self.record.id, status="ended", ended_at=utcnow()
        )
        await self.events.session_ended(f"/v1/sessions/{self.record.id}/report")
        self.close()

    async def on_ending(self) -> None:
        """Hook: pipelines flush their timelines before the session ends."""

    async def cancel_response(self) -> None:
        """Implemented by the response lifecycle."""

    async def submit_text(self, text: str) -> None:
        """A typed user turn: checked against the limits, then replied to."""
        await self.start_turn(self.turn_text(text))

    def turn_text(self, text: str) -> str:
        """The text of a typed user turn, stripped, or the error that refuses it."""
        text = text.strip()
        if not text:
            raise ProtocolError("invalid_event", "input_text needs non-blank text.")
        if len(text) > self.settings.max_input_chars:
            raise ProtocolError(
                "message_too_large",
                f"Text turns are limited to {self.settings.max_input_chars} characters.",
            )
        if self.paused:
            raise ProtocolError("session_paused", "The session is paused; resume it first.")
        return text

    async def start_turn(
        self,
        text: str,
        t0: float | None = None,
        source: str = "text",
        announce: Callable[[], Awaitable[None]] | None = None,
        trigger: str | None = None,
    ) -> None:
        """Implemented by the response lifecycle."""
        raise NotImplementedError


def aware(t: datetime) -> datetime:
    """Stored times may come back naive (UTC)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def ms(t: float | None, t0: float) -> int | None:
    return None if t is None else round((t - t0) * 1000)
