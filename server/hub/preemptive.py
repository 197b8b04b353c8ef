"""A session's preemptive start (issue 19): the reply is requested on the words of a pause
while the end-of-turn detector still waits, and held unseen (server/turns/preemptive.py).

At most one is held. When the turn ends with the same words (case, punctuation and spacing
aside), ``take`` hands it to ``start_turn``, which stores the user's message and lets it go
on as the ordinary reply: the model's time so far is saved. Anything else discards it: other
words (the user went on), a text or proactive turn, a barge-in, a change of turn detection,
the session ending. A discarded start is cancelled, the checkpoint its graph run wrote is
dropped (the thread is exactly as before) and its model calls are counted in usage as
``llm_calls`` and ``llm_calls_preemptive_wasted``; nothing else of it exists anywhere.

Not started while a reply runs or plays, while the session is paused, or while an approval
or a screen task's preview waits for a spoken yes or no (that answer must reach them first,
never a persona reply made in advance)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from server.hub.active_response import ActiveResponse
from server.logging import get_logger
from server.store.base import new_id
from server.turns.preemptive import words

if TYPE_CHECKING:
    from server.hub.session import Session
    from server.turns.latency import VoiceMarks

log = get_logger(__name__)


class PreemptiveStarts:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.held: ActiveResponse | None = None
        # starts, discards and takes run one after another: a new start must not read the
        # thread's history before the discarded one's checkpoint is dropped
        self._lock = asyncio.Lock()
        self._closed = False

    def enabled(self) -> bool:
        td = self.s.config["turn_detection"]
        on = td.get("preemptive")
        return self.s.settings.turn_preemptive if on is None else bool(on)

    def offer(self, text: str) -> None:
        """A pause's words, the turn not over yet (pipelines/audio.py): start on them."""
        if text.strip() and self.enabled():
            self.s.spawn(self._start(text))

    async def take(self, text: str, voice: bool) -> ActiveResponse | None:
        """The held start if the turn that ended (a voice turn) has its words; else None,
        and any held start is discarded."""
        async with self._lock:
            r = self.held
            if r is None:
                return None
            if voice and r.task is not None and not r.task.done():
                if words(r.user_text) == words(text):
                    self.held = None
                    log.info("preemptive_kept")
                    return r
            await self._drop("other words" if voice else "another input")
            return None

    def release(
        self,
        r: ActiveResponse,
        number: int,
        t0: float,
        saved: asyncio.Future[Any],
        voice: VoiceMarks | None,
    ) -> None:
        """A taken start's turn is stored (``saved``): it becomes the session's reply,
        numbered like any, and what it generated so far goes out."""
        r.number, r.t0, r.saved_user = number, t0, saved
        r.voice = voice
        self.s.response = r
        assert r.gate is not None
        r.gate.set()

    async def discard(self, why: str) -> None:
        if self.held is None:
            return
        async with self._lock:
            await self._drop(why)

    async def close(self) -> None:
        """The session ends: discard the held start; no new one from here on."""
        self._closed = True
        await self.discard("session closed")

    async def _start(self, text: str) -> None:
        s = self.s
        async with self._lock:
            if self._closed:
                return
            r = self.held
            if r is not None and words(r.user_text) == words(text):
                return  # the same words again (a pause after a cough): keep it
            await self._drop("other words")
            if not self._may_start():
                return
            gate = asyncio.Event()
            unsaved = asyncio.get_running_loop().create_future()  # stored once confirmed
            r = ActiveResponse(
                0, text, time.monotonic(), unsaved, new_id(), gate=gate, run_tag=new_id()
            )
            r.task = asyncio.create_task(s._run_response(r))
            self.held = r
            log.info("preemptive_start")

    def _may_start(self) -> bool:
        s = self.s
        r = s.response
        running = r is not None and r.task is not None and not r.task.done()
        return not (
            running
            or s.paused
            or s.services.agent.llm is None
            or not s.events.voice_starts_turns
            or s.approvals.waiting
            or s.tasks.awaits_answer
        )

    async def _drop(self, why: str) -> None:
        r, self.held = self.held, None
        if r is not None:
            await self.forget(r, why)

    async def forget(self, r: ActiveResponse, why: str) -> None:
        """Cancel a start (held, or taken but never released), drop its checkpoint and
        count its model calls as wasted."""
        if r.task is None:
            return
        r.task.cancel()
        await asyncio.wait({r.task})
        if not r.task.cancelled() and (e := r.task.exception()) is not None:
            log.warning("preemptive_failed", error=type(e).__name__)
        s = self.s
        assert r.run_tag is not None
        dropped = await s.services.agent.forget_run(s.record.thread_id, r.run_tag)
        usage = r.meter.totals() if r.meter is not None else {}
        calls = usage.get("llm_calls", 0)
        log.info("preemptive_discarded", why=why, llm_calls=calls, checkpoints=dropped)
        if calls:  # the model was asked: what it cost is counted, as wasted
            counters = {k: v for k, v in usage.items() if v}
            await s.services.store.incr_usage(
                s.user_id, counters | {"llm_calls_preemptive_wasted": calls}
            )
