"""The reply a session is generating or playing, as the hub's response modules share it
(hub/responses.py runs it, hub/reply_speech.py speaks it, hub/playback.py tracks what the
client played of it, hub/preemptive.py holds one started early)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from server.agent.graph import ClientCall
from server.agent.state import MemorySearch, ToolRecord
from server.hub import protocol as p
from server.pipelines.speech_out import SpeechOut
from server.providers.usage_meter import TurnMeter
from server.store.base import new_id
from server.turns.latency import VoiceMarks


@dataclass
class ActiveResponse:
    number: int
    user_text: str
    t0: float
    saved_user: asyncio.Future[Any]  # the user's message being stored (id message_id)
    message_id: str
    reply_id: str = field(default_factory=new_id)  # the reply's id, in store and history
    task: asyncio.Task[None] | None = None
    sent: list[str] = field(default_factory=list)
    first_delta_at: float | None = None
    first_audio_at: float | None = None
    generated_at: float | None = None
    played_ms: int | None = None
    played_at: float | None = None  # monotonic, when the client started playing it
    finished: bool = False
    cut_after_done: bool = False  # truncated after response.done (counted once in usage)
    speech: SpeechOut | None = None
    speech_task: asyncio.Task[None] | None = None
    played: asyncio.Event = field(default_factory=asyncio.Event)
    playback_done: asyncio.Event = field(default_factory=asyncio.Event)
    done_sent: asyncio.Event = field(default_factory=asyncio.Event)  # response.done is out
    voice: VoiceMarks | None = None  # a spoken turn: when the user stopped talking, etc.
    llm_at: float | None = None  # monotonic, when the LLM turn was requested
    script: str | None = None  # a line the persona says on its own (no user turn, no LLM)
    trigger: str | None = None  # a proactive turn: what made the persona speak first
    tool_log: list[ToolRecord] = field(default_factory=list)  # tools that ran (agent fills)
    silent_reason: str | None = None  # set when the turn ended silent (response.done says so)
    emotions: list[str] = field(default_factory=list)  # the persona's marks, in text order
    meter: TurnMeter | None = None  # the turn's LLM calls, also when cut short (usage)
    # a turn continued after the user decided on a call its ended turn asked about:
    # (the approval record, the decision); hub/continuation.py
    resumes: tuple[Any, Any] | None = None
    # the client's results for the functions it ran (OpenAI Realtime), continuing the turn
    # that called them; the calls this reply makes to client functions
    answers: list[tuple[ClientCall, str]] | None = None
    client_calls: list[ClientCall] = field(default_factory=list)
    # a preemptive start (hub/preemptive.py): held unseen until set; its graph run's tag
    gate: asyncio.Event | None = None
    run_tag: str | None = None
    # the memory search started with the turn (Agent.start_memory_search), for its graph run
    memory_search: MemorySearch | None = None

    @property
    def id(self) -> str:
        return p.response_id(self.number)

    @property
    def sent_text(self) -> str:
        return "".join(self.sent)
