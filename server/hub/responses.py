"""The response lifecycle of a session: start, cancel, finish, barge-in and speech out.

One persona reply runs at a time; what it produces is reported through the protocol's
`SessionEvents`, and what it stored is stored before `response_done` is acted on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from server.agent.graph import (
    ClientCall,
    ToolProgress,
    TurnDelta,
    TurnEmotion,
    TurnFinished,
    tool_transcript,
)
from server.agent.state import ToolRecord, TurnContext
from server.avatar.visemes import Keyframe
from server.hub import protocol as p
from server.hub.core import SessionCore, SlowConsumer, ms
from server.logging import redact
from server.pipelines.chunker import SentenceChunker
from server.pipelines.speech_out import SpeechOut, SpokenChunk
from server.providers.failures import llm_failure, paced
from server.providers.llm import LLMNotConfigured
from server.providers.usage_meter import TurnMeter
from server.store.base import new_id
from server.turns.latency import VoiceMarks, voice_timings, voice_usage
from server.turns.preemptive import held


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

    @property
    def id(self) -> str:
        return p.response_id(self.number)

    @property
    def sent_text(self) -> str:
        return "".join(self.sent)


SAY_WAIT_S = 15.0  # a line of the persona's own waits this long for a reply to finish


class Responses(SessionCore):
    """Mixed into Session: the reply being generated and played, and its storage."""

    response: ActiveResponse | None = None
    _response_counter: int = 0
    _warned_tts: bool = False
    perception: Any
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
                if kept is not None:
                    await self.preemptive.forget(kept, "turn not stored")
                raise
        if kept is not None:  # released: from here on it is the ordinary reply
            self._response_counter += 1
            kept.number, kept.t0, kept.saved_user = (
                self._response_counter,
                t0 or time.monotonic(),
                saved,
            )
            kept.voice = voice
            self.response = kept
            assert kept.gate is not None
            kept.gate.set()
            return
        if self.services.agent.llm is None:
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

    async def cancel_response(self) -> None:
        await self.preemptive.discard("a new response")
        r = self.response
        if r is None or r.task is None or r.task.done():
            return
        if not r.finished:  # once response.done is out, only its writes remain: let them land
            r.task.cancel()
            self.perception.reply_cut(r.number)  # the client stops playing it
        await asyncio.wait({r.task})

    def response_active(self) -> bool:
        """A reply is being generated, or its audio is still playing on the client."""
        r = self.response
        return r is not None and not r.finished

    def barge_in_allowed(self) -> bool:
        """``turn_detection.barge_in`` (Realtime's ``interrupt_response``): false lets speech
        over a reply become the next turn once the reply has ended, never cancelling it."""
        return self.config["turn_detection"].get("barge_in") is not False

    def reply_audible(self) -> bool:
        """The user may be hearing a reply: it is active, or (clients that never report
        playback until they cut it: Realtime, DMP) its audio presumably still plays, from
        its first chunk for its duration plus ``PLAYBACK_GRACE_MS``, unless truncated."""
        r = self.response
        if r is None or not r.finished:
            return r is not None
        start, speech = r.first_audio_at, r.speech
        if self.events.awaits_playback or speech is None or start is None or r.played.is_set():
            return False
        end = start + (speech.duration_ms + self.settings.playback_grace_ms) / 1000
        return time.monotonic() < end

    def barge_in(self) -> None:
        """The user started talking over the reply: stop it now, without waiting."""
        self.initiative.user_input()
        self.spawn(self.preemptive.discard("barge-in"))
        r = self.response
        if r is not None and r.task is not None and not r.task.done() and not r.finished:
            self.log.info("barge_in", response_id=r.id)
            r.task.cancel()
            self.perception.reply_cut(r.number)

    def audio_played(self, response_id: str, played_ms: int) -> None:
        """The client says how much of a reply it played: barge-in truncation uses it."""
        r = self.response
        if r is None or r.id != response_id:
            return
        r.played_ms = played_ms
        r.played.set()
        if played_ms == 0 and r.played_at is None:  # playback starts (docs/protocol.md)
            r.played_at = time.monotonic()
            self.perception.reply_playing(r.number)
        if r.speech is not None and r.speech_task is not None and r.speech_task.done():
            if played_ms >= r.speech.duration_ms - 100:
                r.playback_done.set()

    def turn_context(self, reply_id: str | None = None) -> TurnContext:
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
        )

    def new_speech(self, r: ActiveResponse, fmt: Any) -> SpeechOut:
        async def send_audio(seq: int, data: bytes) -> None:
            await self.events.audio_chunk(r, seq, data)

        async def sentence_done(chunk: SpokenChunk) -> None:
            assert r.speech is not None
            await self.events.speech_sentence(r, len(r.speech.spoken) - 1, chunk)

        async def visemes(seq: int, keys: list[Keyframe], emotion: str | None) -> None:
            await self.events.audio_visemes(r, seq, [k.as_dict() for k in keys], emotion)

        return SpeechOut(
            self.services.tts,
            self.config["voice"] or self.persona.tts_voice,
            fmt,
            r.number,
            send_audio,
            user_id=self.user_id,
            chunker=SentenceChunker(first_words=self.settings.tts_first_chunk_words),
            on_sentence=sentence_done,
            on_visemes=visemes
            if self.settings.avatar_visemes and self.events.wants_visemes()
            else None,
            on_pcm=self.perception.reply_audio_tap(r.number),
        )

    async def _run_response(self, r: ActiveResponse) -> None:
        """One reply. A preemptive start (``r.gate``) waits unseen in ``held`` until its
        turn is confirmed; a discard cancels it there (nothing was sent or stored)."""
        finished: TurnFinished | None = None
        s = self.settings
        ctx: TurnContext | None = None
        if r.script is None:
            ctx = self.turn_context(r.reply_id)
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
            if failure is not None:
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

    async def on_reply_delta(self, r: ActiveResponse, delta: str) -> None:
        if r.speech is not None:
            r.speech.feed(delta)

    async def on_reply_text_done(self, r: ActiveResponse) -> None:
        """Text is complete: finish its audio, then stay active while the client plays it
        (so speech over the reply is a barge-in until the last word was heard)."""
        if r.speech is None or r.speech_task is None:
            r.generated_at = time.monotonic()
            return
        r.speech.finish()
        await r.speech_task
        r.generated_at = time.monotonic()
        r.first_audio_at = r.speech.first_audio_at
        await self._warn_tts(r.speech)
        await self.events.audio_done(r, r.speech.seq, round(r.speech.duration_ms))
        if r.first_audio_at is None or not self.events.awaits_playback:
            return
        left = r.speech.duration_ms / 1000 - (time.monotonic() - r.first_audio_at)
        if (r.played_ms or 0) >= r.speech.duration_ms - 100:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, left) + self.settings.playback_grace_ms / 1000):
                await r.playback_done.wait()

    async def _warn_tts(self, speech: SpeechOut) -> None:
        if speech.error:
            await self.warn("tts_failed", f"Reply audio stopped: {speech.error}")
        tts = self.services.tts
        if not self._warned_tts and getattr(tts, "degraded", False):
            self._warned_tts = True
            await self.warn(
                "tts_degraded",
                "The online voice service is unreachable; replies use the offline voice "
                f"(espeak-ng) for now. ({getattr(tts, 'degraded_reason', '')})",
            )

    async def _stop_speech(self, r: ActiveResponse) -> None:
        if r.speech_task is not None and not r.speech_task.done():
            r.speech_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await r.speech_task
        if r.speech is not None:
            r.first_audio_at = r.speech.first_audio_at

    def heard_text(self, r: ActiveResponse) -> str:
        """What the user got of a cancelled reply: the text of the audio they played, or
        all text sent when there was no audio or no playback report."""
        if r.speech is not None and r.speech.seq and r.played_ms is not None:
            return r.speech.heard_text(r.played_ms)
        return r.sent_text

    async def _finish(self, r: ActiveResponse, status: str, finished: TurnFinished | None) -> None:
        """Commit first, then acknowledge: response.done goes out once the user's message,
        the reply (cut short: all text sent, or what a played report already says was
        heard) and the model's history are stored. A cancelled reply's stored text then
        settles to what the client reports it played."""
        r.finished = True
        end = r.generated_at or time.monotonic()
        timings = {
            "ttft_ms": ms(r.first_delta_at, r.t0),
            "ttfa_ms": ms(r.first_audio_at, r.t0),
            "total_ms": ms(end, r.t0),
        }
        if r.voice is not None:  # the latency the user hears (server/turns/latency.py)
            timings |= voice_timings(
                r.voice, r.llm_at, r.first_delta_at, r.first_audio_at, r.played_at
            )
        # the meter also has a reply cut short (its usage chunk never came: estimated)
        usage = r.meter.totals() if r.meter is not None else finished.usage if finished else {}
        text = r.sent_text
        kept = self.heard_text(r) if status == "cancelled" else text
        if finished is not None and finished.silent:
            r.silent_reason = finished.silent_reason or "silent"
        await r.saved_user
        for line in tool_transcript(r.tool_log):  # what the tools did, before the reply
            await self.services.store.add_message(
                self.user_id, self.record.id, self.persona.id, "system", line
            )
        await self._store_reply(r, status, kept, timings)
        # The usage counters are accounting, not part of what response.done acknowledges:
        # written while the event goes out (one commit fewer before it).
        counted = asyncio.ensure_future(
            self.services.store.incr_usage(
                self.user_id,
                {
                    "llm_calls": usage.get("llm_calls", 1 if status != "failed" or usage else 0),
                    "input_tokens": usage.get("input_tokens", 0),
                    "output_tokens": usage.get("output_tokens", 0),
                }
                | ({"estimated_tokens": n} if (n := usage.get("estimated_tokens", 0)) else {})
                | ({"interrupted_replies": 1} if status == "cancelled" else {})
                | voice_usage(timings),
            )
        )
        await self.events.response_done(
            r,
            status,
            text,
            timings,
            {
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
            },
        )
        r.done_sent.set()
        await self.events.response_stored(r, status, kept)
        self.log.info("response_done", response_id=r.id, status=status, **timings)
        await counted
        if status == "cancelled" and (heard := await self.settle_heard_text(r)) != kept:
            await self._settle(r, heard)

    async def _settle(self, r: ActiveResponse, heard: str) -> None:
        """The stored reply and the model's history keep only what the user heard."""
        await self.services.store.settle_message(self.user_id, r.reply_id, heard)
        if r.script is not None:  # the line alone, as much of it as was heard
            await self.services.agent.record_said(
                self.record.thread_id, heard, r.reply_id, interrupted=True
            )
            return
        await self.services.agent.record_interrupted(
            self.record.thread_id, r.user_text, heard, r.message_id, r.reply_id, r.tool_log
        )

    async def truncate_done(self, r: ActiveResponse, played_ms: int) -> None:
        """A client that plays replies itself (OpenAI Realtime) cut this reply at
        ``played_ms`` after its response.done: once its own writes landed, the stored
        reply and the history settle to what was heard, as for a barge-in."""
        self.audio_played(r.id, played_ms)
        if r.task is not None:
            await asyncio.wait({r.task})
        heard = self.heard_text(r)
        if heard != r.sent_text:
            await self._settle(r, heard)

    async def _store_reply(
        self,
        r: ActiveResponse,
        status: str,
        text: str,
        timings: dict[str, Any],
    ) -> None:
        """The turn, as response.done acknowledges it: the reply, and for a turn that did
        not complete, the model's history (a completed run checkpointed it as it ended). A
        line of the persona's own (no model run) is written into the history here."""
        if r.script is not None:
            await self.services.agent.record_said(
                self.record.thread_id, text, r.reply_id, interrupted=status != "completed"
            )
        elif status != "completed":
            await self.services.agent.record_interrupted(
                self.record.thread_id, r.user_text, text, r.message_id, r.reply_id, r.tool_log
            )
        if text:  # a silent plan stores no empty reply
            await self.services.store.add_message(
                self.user_id,
                self.record.id,
                self.persona.id,
                "assistant",
                text,
                timings=timings,
                interrupted=status != "completed",  # cut short: cancelled, or a failure
                message_id=r.reply_id,
            )

    async def settle_heard_text(self, r: ActiveResponse) -> str:
        """After a cancel, give the client a moment to report how much it played."""
        if r.speech is not None and r.speech.seq and r.played_ms is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.played_report_wait_ms / 1000):
                    await r.played.wait()
        return self.heard_text(r)


async def said(text: str) -> AsyncIterator[TurnDelta | TurnFinished]:
    """A scripted line as a turn's stream: one delta, then the end."""
    yield TurnDelta(text)
    yield TurnFinished(text, False)
