"""The response lifecycle of a session: start, cancel, barge-in, run, finish and store.

One persona reply runs at a time; what it produces is reported through the protocol's
`SessionEvents`, and what it stored is stored before `response_done` is acted on. Its
speech out is hub/reply_speech.py, what the client heard of it hub/playback.py, its end
(stored, then acknowledged) hub/reply_commit.py, a reply started before the turn ended
hub/preemptive.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from server.agent.graph import (
    ClientCall,
    ToolProgress,
    TurnDelta,
    TurnEmotion,
    TurnFinished,
)
from server.agent.state import TurnContext
from server.hub import protocol as p
from server.hub.active_response import ActiveResponse
from server.hub.outbound import SlowConsumer
from server.hub.reply_commit import ReplyCommit
from server.hub.reply_speech import ReplySpeech
from server.hub.store_failures import NO_DATABASE, store_failure
from server.logging import redact
from server.providers.failures import llm_failure, paced
from server.providers.llm import LLMNotConfigured
from server.store.base import new_id
from server.turns.latency import VoiceMarks
from server.turns.preemptive import held

__all__ = ["SAY_WAIT_S", "ActiveResponse", "Responses", "said"]

SAY_WAIT_S = 15.0  # a line of the persona's own waits this long for a reply to finish


class Responses(ReplySpeech, ReplyCommit):
    """Mixed into Session: the reply being generated and played, and its storage."""

    _response_counter: int = 0
    tasks: Any  # the user's screen task runner (server/tasks), set by Session
    initiative: Any  # proactive speech (server/initiative), set by Session
    approvals: Any  # the approval gate (server/agent/approvals.py), set by Session
    preemptive: Any  # the reply started before the turn ended (hub/preemptive.py)
    # lines the persona starts on its own (say, a continued turn) wait for each other
    own_lines: asyncio.Lock

    async def start_turn(
        self,
        text: str,
        t0: float | None = None,
        source: str = "text",
        announce: Callable[[], Awaitable[None]] | None = None,
        trigger: str | None = None,
        resumes: tuple[Any, Any] | None = None,
        answers: list[tuple[ClientCall, str]] | None = None,
        voice: VoiceMarks | None = None,
    ) -> None:
        """Run one persona reply; a reply still streaming is cancelled first. A yes or no
        also answers the screen task's pending preview. The user's message is stored while
        the reply starts; ``announce`` (transcript.done) goes out once it is stored, before
        the reply starts. ``resumes``: (approval, decision) of a call whose turn ended.
        ``answers``: the client's results of the functions it ran (the turn goes on).
        A voice turn whose words a held preemptive start has becomes that start."""
        if trigger is None and resumes is None and answers is None:
            self.initiative.user_input()
            if await self.approvals.hear(text):  # "응, 해줘" answers the pending approval
                await self.preemptive.discard("an approval's answer")
                return
            self.tasks.hear(text)
        kept = await self.preemptive.take(text, voice=source == "voice" and trigger is None)
        # a new reply looks the user up now, while the old one stops and the words are stored
        search = None if kept else self.services.agent.start_memory_search(self.user_id, text)
        if source == "voice" and not self.barge_in_allowed():
            await self.let_reply_finish(None)  # speech over it must not cut it (barge_in false)
        await self.cancel_response()
        # the same id in the store and in the model's history
        message_id = kept.message_id if kept is not None else new_id()
        # a proactive or continued turn's prompt is in the history as a system line, not as
        # the user's
        stored_role, stored = ("user", text)
        if trigger:
            stored_role, stored = ("system", f"[proactive {trigger}] {text}")
        elif resumes is not None:
            stored_role, stored = ("system", f"[approval {resumes[1].status}] {text}")
        elif answers is not None:
            stored_role, stored = ("system", f"[functions {', '.join(c.name for c, _ in answers)}]")
        saved = asyncio.ensure_future(
            self.services.store.add_message(
                self.user_id,
                self.record.id,
                self.persona.id,
                stored_role,  # type: ignore[arg-type]
                stored,
                message_id=message_id,
            )
        )
        if announce is not None:
            try:
                await saved
                await announce()
            except BaseException:  # not stored, or the session ends: never released
                if search is not None:
                    search.task.cancel()
                if kept is not None:
                    await self.preemptive.forget(kept, "turn not stored")
                raise
        if kept is not None:  # released: from here on it is the ordinary reply
            self._response_counter += 1
            self.preemptive.release(
                kept, self._response_counter, t0 or time.monotonic(), saved, voice
            )
            return
        if self.services.agent.llm is None:
            if search is not None:
                search.task.cancel()
            await saved
            await self.error("llm_not_configured", str(LLMNotConfigured()))
            return
        self._response_counter += 1
        resp = ActiveResponse(
            self._response_counter,
            text,
            t0 or time.monotonic(),
            saved,
            message_id,
            trigger=trigger,
            resumes=resumes,
            answers=answers,
            voice=voice,
            memory_search=search,
        )
        self.response = resp
        resp.task = asyncio.create_task(self._run_response(resp))

    async def submit_function_results(self, answers: list[tuple[ClientCall, str]]) -> None:
        """The client's results for the functions the model called (OpenAI Realtime
        function calling): the turn that called them goes on with them."""
        if self.paused:
            raise p.ProtocolError("session_paused", "The session is paused; resume it first.")
        names = ", ".join(c.name for c, _ in answers)
        prompt = f"(The app ran {names} as you asked; the result follows. Answer the user.)"
        await self.start_turn(prompt, source="functions", answers=answers)

    async def start_proactive(self, trigger: str, prompt: str) -> None:
        """The persona speaks first (server/initiative): a turn on the trigger's prompt,
        counted in usage like any turn and marked with its trigger on every protocol."""
        await self.start_turn(prompt, source="proactive", trigger=trigger)
        self.spawn(self.services.store.incr_usage(self.user_id, {"proactive_turns": 1}))

    async def say(self, text: str) -> None:
        """The persona speaks a line of its own (a task preview) as a response without a user
        turn. A reply still running or playing is let finish first (up to SAY_WAIT_S);
        barge-in stops the line like any reply."""
        async with self.own_lines:
            await self.let_reply_finish()
            await self.cancel_response()
            no_user_message = asyncio.get_running_loop().create_future()
            no_user_message.set_result(None)
            self._response_counter += 1
            resp = ActiveResponse(
                self._response_counter, "", time.monotonic(), no_user_message, new_id(), script=text
            )
            self.response = resp
            resp.task = asyncio.create_task(self._run_response(resp))

    async def let_reply_finish(self, wait_s: float | None = SAY_WAIT_S) -> None:
        """Wait (up to ``wait_s``, None: as long as it lasts) for a reply still running or
        playing to end."""
        r = self.response
        if r is not None and r.task is not None and not r.task.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await asyncio.wait({r.task})

    async def cancel_response(self, *, settled: bool = True) -> None:
        """Stop the active reply. ``settled`` (a new turn, a pause, the end): wait until
        its stored text settled to what was heard. Else (the client's response.cancel)
        only until its response.done is out: the reader must not wait, since the report
        of where playback stopped that the settling waits for comes after the cancel."""
        await self.preemptive.discard("a new response")
        r = self.response
        if r is None or r.task is None or r.task.done():
            return
        if not r.finished:  # once response.done is out, only its writes remain: let them land
            r.task.cancel()
            self.perception.reply_cut(r.number)  # the client stops playing it
        if settled:
            await asyncio.wait({r.task})
            return
        done_sent = asyncio.ensure_future(r.done_sent.wait())
        try:
            await asyncio.wait({r.task, done_sent}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done_sent.cancel()

    def response_active(self) -> bool:
        """A reply is being generated, or its audio is still playing on the client."""
        r = self.response
        return r is not None and not r.finished

    def barge_in_allowed(self) -> bool:
        """``turn_detection.barge_in`` (Realtime's ``interrupt_response``): false lets speech
        over a reply become the next turn once the reply has ended, never cancelling it."""
        return self.config["turn_detection"].get("barge_in") is not False

    def barge_in(self) -> None:
        """The user started talking over the reply: stop it now, without waiting."""
        self.initiative.user_input()
        self.spawn(self.preemptive.discard("barge-in"))
        r = self.response
        if r is not None and r.task is not None and not r.task.done() and not r.finished:
            self.log.info("barge_in", response_id=r.id)
            r.task.cancel()
            self.perception.reply_cut(r.number)

    def turn_context(self, reply_id: str | None = None) -> TurnContext:
        # a reply spoken aloud keeps per-token text: the speech chunker starts on it
        spoken = self.config["output_audio"] != "none" and self.services.tts is not None
        return TurnContext(
            persona=self.persona,
            user_turns=self.user_turns,
            instructions=self.config["instructions"],
            instructions_mode=self.config["instructions_mode"],
            temperature=self.config["temperature"],
            max_tokens=self.config["max_tokens"],
            perception=self.perception,
            vision_wait_s=getattr(self.settings, "vision_wait_s", 3.0),
            reply_id=reply_id,
            approve=self.approvals.ask,
            client_tools=self.events.client_tools(),
            meter=self.services.agent.new_meter(),
            flush_s=0.0 if spoken else getattr(self.settings, "stream_flush_ms", 0.0) / 1000,
        )

    async def _run_response(self, r: ActiveResponse) -> None:
        """One reply. A preemptive start (``r.gate``) waits unseen in ``held`` until its
        turn is confirmed; a discard cancels it there (nothing was sent or stored)."""
        finished: TurnFinished | None = None
        s = self.settings
        ctx: TurnContext | None = None
        if r.script is None:
            ctx = self.turn_context(r.reply_id)
            ctx.memory_search, r.memory_search = r.memory_search, None
            ctx.gate = r.gate
            ctx.on_tool_event = partial(self.events.tool_event, r)
            r.tool_log = ctx.tool_log
            r.meter = ctx.meter
            after = self.services.agent.client_exchange(r.answers) if r.answers else None
            r.llm_at = time.monotonic()
            turn = (
                self.services.agent.stream_turn(
                    self.user_id,
                    self.record.thread_id,
                    r.user_text,
                    ctx,
                    r.message_id,
                    after,
                    run_tag=r.run_tag,
                )
                if r.resumes is None
                else self._continued(r, ctx)
            )
            stream = paced(turn, s.llm_first_token_timeout_s, s.llm_stream_idle_timeout_s)
            if r.gate is not None:
                stream = await held(stream, r.gate)
            self.user_turns += 1
        else:
            stream = said(r.script)
        self.log.info(
            "response_started", response_id=r.id, text=redact(r.user_text, self.settings.log_pii)
        )
        await self.events.response_created(r)
        fmt = self.config["output_audio"]
        if fmt != "none" and self.services.tts is not None:
            r.speech = self.new_speech(r, fmt)
            r.speech_task = asyncio.create_task(r.speech.run())
        try:
            async for ev in stream:
                if isinstance(ev, TurnDelta):
                    if r.first_delta_at is None:
                        r.first_delta_at = time.monotonic()
                    r.sent.append(ev.text)
                    await self.events.text_delta(r, ev.text)
                    await self.on_reply_delta(r, ev.text)
                elif isinstance(ev, ClientCall):
                    r.client_calls.append(ev)
                    await self.events.client_call(r, ev)
                elif isinstance(ev, TurnEmotion):
                    r.emotions.append(ev.emotion)
                    if r.speech is not None:
                        r.speech.mark(ev.emotion)
                    await self.events.emotion(r, ev.emotion)
                elif isinstance(ev, TurnFinished):  # (ToolProgress only keeps the pace)
                    finished = ev
            await self.on_reply_text_done(r)
        except asyncio.CancelledError:
            await self._stop_speech(r)
            if ctx is not None:
                await ctx.settle_tools()  # a tool that started finishes and is recorded
            await self._finish(r, "cancelled", None)
            raise
        except SlowConsumer:
            await self._stop_speech(r)
            await self._finish(r, "failed", None)
        except LLMNotConfigured as e:
            await self._stop_speech(r)
            await self.error("llm_not_configured", str(e))
            await self._finish(r, "failed", None)
        except Exception as e:
            await self._stop_speech(r)
            if ctx is not None:
                await ctx.settle_tools()
            failure = llm_failure(e, mid_reply=bool(r.sent), tries=s.llm_max_retries + 1)
            if store_failure(e):
                self.log.warning("response_store_failed", error=type(e).__name__)
                await self.error("database_unavailable", f"The reply failed: {NO_DATABASE}")
            elif failure is not None:
                self.log.warning("llm_failed", code=failure.code, error=type(e).__name__)
                await self.error(failure.code, failure.message)
            else:
                self.log.exception("response_failed")
                await self.error("internal_error", "The reply failed because of a server error.")
            await self._finish(r, "failed", None)
        else:
            await self._finish(r, "completed", finished)

    async def _continued(
        self, r: ActiveResponse, ctx: TurnContext
    ) -> AsyncIterator[TurnDelta | TurnEmotion | ToolProgress | TurnFinished]:
        """The decided call runs (or is skipped) first, then the model answers after it."""
        assert r.resumes is not None
        rec, decision = r.resumes
        agent = self.services.agent
        after = await agent.resume_call(
            self.user_id, ctx, rec.id, rec.name, rec.arguments, decision
        )
        yield ToolProgress(rec.name)
        async for ev in agent.stream_turn(
            self.user_id, self.record.thread_id, r.user_text, ctx, r.message_id, after
        ):
            yield ev


async def said(text: str) -> AsyncIterator[TurnDelta | TurnFinished]:
    """A scripted line as a turn's stream: one delta, then the end."""
    yield TurnDelta(text)
    yield TurnFinished(text, False)
