"""What a session tells its client, independent of the wire protocol.

The session core calls these methods; each protocol in server/protocols/ implements them by
writing its own event shapes through the core's outbound queue (`SessionCore.send` and
`send_bytes`), and implements `read()` by turning its client frames into core calls. A
protocol translates; turn logic, limits, auth and storage stay in the core."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.agent.graph import ClientCall
    from server.hub.responses import ActiveResponse, Responses
    from server.pipelines.speech_out import SpokenChunk
    from server.store.base import ApprovalRecord, ReminderRecord


class SessionEvents(ABC):
    """One protocol's side of a session: inbound frames in, happenings out."""

    # The client reports playback (response.audio.played): a reply stays active, so speech
    # over it is a barge-in, until its audio has been heard. Clients that cannot report it
    # end the reply when its audio is sent.
    awaits_playback: bool = True
    # The client can say how much of a cut reply it played (response.audio.played,
    # Realtime's truncate): a cancel waits PLAYED_REPORT_WAIT_MS for it. False: never wait.
    reports_playback: bool = True
    # A final transcript starts a reply (our protocol, Realtime's server_vad with
    # create_response). False: the protocol decides when to reply (Realtime's response.create).
    voice_starts_turns: bool = True

    def wants_visemes(self) -> bool:
        """The client animates a mouth from our timelines (costs ~3% of a core per voice)."""
        return False

    @abstractmethod
    async def read(self) -> None:
        """Read client frames until the client disconnects (or the session closes)."""

    # --- session ----------------------------------------------------------------------
    @abstractmethod
    async def session_created(self) -> None: ...

    @abstractmethod
    async def session_updated(self) -> None: ...

    @abstractmethod
    async def session_ended(self, report_url: str) -> None: ...

    # --- responses ----------------------------------------------------------------------
    @abstractmethod
    async def response_created(self, r: ActiveResponse) -> None: ...

    @abstractmethod
    async def text_delta(self, r: ActiveResponse, delta: str) -> None: ...

    def client_tools(self) -> list[dict[str, Any]]:
        """Functions the client runs itself, offered to the model beside ours (chat
        completions tool schemas); a call to one ends the turn (``client_call``)."""
        return []

    async def client_call(self, r: ActiveResponse, call: ClientCall) -> None:
        """The model called one of ``client_tools``: the client runs it and answers."""
        return None

    async def emotion(self, r: ActiveResponse, emotion: str) -> None:
        """The persona marked ``emotion`` (happy, sad, angry, surprised, relaxed, neutral)
        at this point of the reply text, between the deltas around it; the sentences it
        marks carry it in ``SpokenChunk.emotion`` and their keyframes. A protocol without
        an event for it leaves this as is."""
        return None

    @abstractmethod
    async def audio_chunk(self, r: ActiveResponse, seq: int, data: bytes) -> None:
        """One chunk of reply audio in the session's output format, in order."""

    @abstractmethod
    async def audio_visemes(
        self, r: ActiveResponse, seq: int, keyframes: list[dict[str, Any]], emotion: str | None
    ) -> None:
        """The mouth timeline of audio chunk ``seq`` (sent just before): keyframes
        ``{duration, targets: {aa|ih|ou|ee|oh: opening}}`` (closed = no viseme target),
        each also holding the expression of the sentence's ``emotion`` (``{happy: 1.0}``)."""

    @abstractmethod
    async def audio_done(self, r: ActiveResponse, chunks: int, duration_ms: int) -> None: ...

    @abstractmethod
    async def response_done(
        self,
        r: ActiveResponse,
        status: str,
        text: str,
        timings: dict[str, int | None],
        usage: dict[str, int],
    ) -> None:
        """The reply ended (completed, cancelled or failed); its storage follows."""

    async def tool_event(self, r: ActiveResponse, event: dict[str, Any]) -> None:
        """The agent called a tool or got its result: ``event`` is the /v1/ws shape
        without the response id (``type`` response.tool_call or response.tool_result).
        A protocol without tool events leaves this as is (they are also in the stored
        transcript)."""
        return None

    @abstractmethod
    async def speech_sentence(self, r: ActiveResponse, index: int, chunk: SpokenChunk) -> None:
        """Sentence ``index`` of the reply has all its audio sent (audio_chunk before)."""

    @abstractmethod
    async def response_stored(self, r: ActiveResponse, status: str, text: str) -> None:
        """The reply and the user's turn are stored; ``text`` is what was kept (for a
        cancelled reply, what the user heard)."""

    # --- voice input ------------------------------------------------------------------
    @abstractmethod
    async def speech_started(self, item_id: str | None, t_ms: int) -> None: ...

    @abstractmethod
    async def speech_stopped(self, item_id: str | None, t_ms: int) -> None: ...

    async def speech_cut(self, item_id: str, t_ms: int) -> None:
        """Announced speech ended by the client or the session (a commit, a clear, a switch
        to push-to-talk, the session ending), not by the turn detector: its speech_stopped."""
        await self.speech_stopped(item_id, t_ms)

    @abstractmethod
    async def transcript_delta(self, item_id: str | None, text: str) -> None: ...

    @abstractmethod
    async def transcript_done(self, item_id: str, text: str, seconds: float = 0.0) -> None:
        """The final transcript of ``seconds`` of the user's audio."""

    async def backchannel(self, item_id: str, text: str) -> None:  # noqa: B027 - optional
        """The user acknowledged the playing reply ("mm-hm"): no turn. Protocols without
        such an event leave it out."""

    # --- perception, reminders, problems ---------------------------------------------------
    @abstractmethod
    async def analysis(self, event: dict[str, Any], *, droppable: bool = False) -> None:
        """analysis.face / analysis.voice / vision.description (in /v1/ws shape)."""

    @abstractmethod
    async def reminder(self, r: ReminderRecord) -> bool:
        """Send a due reminder; True once it was written to the socket, False when the
        connection closed first (the reminder is then retried, docs/protocol.md)."""

    async def server_status(self, event: dict[str, Any]) -> None:
        """The server's modules changed (``server.status`` in /v1/ws shape: modules, details,
        download progress). A protocol without such an event ignores it."""
        return None

    @abstractmethod
    async def warning(self, code: str, message: str) -> None: ...

    @abstractmethod
    async def error(
        self, code: str, message: str, fatal: bool, extra: dict[str, Any] | None = None
    ) -> None:
        """A problem the client should know of; ``extra`` fields add detail (e.g. a
        rate_limited error's dropped count)."""

    # --- approvals (server/agent/approvals.py) ----------------------------------------------
    async def approval_request(self, rec: ApprovalRecord, question: str) -> None:  # noqa: B027
        """A consequential tool call waits for the user's decision; ``question`` is what
        the persona says to ask (hub/continuation.py speaks it). ws_v1 sends
        approval.request, DMP hitl_request; a protocol without an approval event (default)
        sends nothing, and the spoken question plus a yes/no by voice or text decide it."""


async def send_reminder(
    session: Responses,
    frames: Callable[[], list[dict[str, Any]]],
    *,
    between_replies: bool = False,
) -> bool:
    """A due reminder in a protocol's own frames (built by ``frames()`` when it is sent),
    for ``SessionEvents.reminder``: True once the last frame was written to the socket (the
    delivery is acknowledged by the write, server/hub/reminders.py), False when the
    connection closed first. ``between_replies``: first wait until a reply that is still
    generating has ended (protocols whose reminder is a turn or an item of its own)."""
    while between_replies and (r := session.response) is not None and r.task is not None:
        if not session.response_active():
            break
        await asyncio.wait({r.task})
    *before, last = frames()
    for frame in before:
        await session.send(frame)
    return await session.send_confirmed(last)
