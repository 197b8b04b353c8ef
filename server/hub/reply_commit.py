"""A reply's end: commit first, then acknowledge. The user's message, the reply (or what
of it was heard), the tools' transcript, the turn's usage counters and the model's history
are stored before response.done goes out. Apart from the lifecycle (hub/responses.py),
which decides when a reply ends; this decides what its end leaves behind."""

from __future__ import annotations

import time
from typing import Any

from server.agent.graph import TurnFinished, tool_transcript
from server.hub.active_response import ActiveResponse
from server.hub.core import ms
from server.hub.playback import Playback
from server.turns.latency import voice_timings, voice_usage


class ReplyCommit(Playback):
    """Mixed into Session (through Responses): storing and acknowledging a finished
    reply."""

    async def _finish(self, r: ActiveResponse, status: str, finished: TurnFinished | None) -> None:
        """Commit first, then acknowledge: response.done goes out once the user's message,
        the reply (cut short: all text sent, or what a played report already says was
        heard), the turn's usage counters and the model's history are stored. A cancelled
        reply's stored text then settles to what the client reports it played."""
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
        counters = (
            {
                "llm_calls": usage.get("llm_calls", 1 if status != "failed" or usage else 0),
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
            }
            | ({"estimated_tokens": n} if (n := usage.get("estimated_tokens", 0)) else {})
            | ({"interrupted_replies": 1} if status == "cancelled" else {})
            | voice_usage(timings)
        )
        await self._store_reply(r, status, kept, timings, counters)
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
        if status == "cancelled" and (heard := await self.settle_heard_text(r)) != kept:
            await self._settle(r, heard)

    async def _store_reply(
        self,
        r: ActiveResponse,
        status: str,
        text: str,
        timings: dict[str, Any],
        counters: dict[str, int],
    ) -> None:
        """The turn, as response.done acknowledges it: the reply with the turn's usage
        counters (one transaction on SQLite), and for a turn that did not complete, the
        model's history (a completed run checkpointed it as it ended). A line of the
        persona's own (no model run) is written into the history here."""
        if r.script is not None:
            await self.services.agent.record_said(
                self.record.thread_id, text, r.reply_id, interrupted=status != "completed"
            )
        elif status != "completed":
            await self.services.agent.record_interrupted(
                self.record.thread_id, r.user_text, text, r.message_id, r.reply_id, r.tool_log
            )
        await self.services.store.add_reply(  # a silent plan stores no empty reply
            self.user_id,
            self.record.id,
            self.persona.id,
            text,
            usage=counters,
            timings=timings,
            interrupted=status != "completed",  # cut short: cancelled, or a failure
            message_id=r.reply_id,
        )
