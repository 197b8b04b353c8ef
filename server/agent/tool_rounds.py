"""The tools node of the turn graph: run the model's tool calls in order, ask the user
before consequential ones (server/agent/approvals.py), record every call and its result."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ToolMessage,
)
from langgraph.runtime import Runtime

from server.agent.state import GraphState, ToolRecord, TurnContext
from server.agent.tools import ToolEnv, ToolError, ToolOutcome, ToolRegistry, to_json
from server.agent.turn_events import ToolProgress
from server.logging import get_logger

log = get_logger(__name__)


class ToolRounds:
    """Mixed into Agent: its tools node and the running of decided calls."""

    tools: ToolRegistry
    tool_timeout_s: float

    async def run_tools(self, state: GraphState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Run the last message's tool calls in order. A call that started always finishes
        and is recorded, even if the turn is cancelled meanwhile (barge-in); calls after
        it never start. stay_silent ends the turn after its round."""
        ctx = runtime.context
        await ctx.confirmed()  # a preemptive start runs no tool before its turn is confirmed
        env = ctx.tool_env
        assert env is not None
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        calls = [(c["id"] or "", c["name"], c["args"]) for c in last.tool_calls]
        calls += [
            (c.get("id") or "", c.get("name") or "", c.get("args") or "")
            for c in last.invalid_tool_calls
        ]
        out: list[BaseMessage] = []
        for call_id, name, args in calls:
            if env.silence is not None:
                content = to_json({"skipped": "the turn ended with stay_silent"})
                out.append(ToolMessage(content, tool_call_id=call_id, name=name))
                continue
            rec = await self._call_tool(ctx, env, call_id, name, args)
            out.append(ToolMessage(rec.content, tool_call_id=call_id, name=name))
            ctx.emit(ToolProgress(name))
        update: dict[str, Any] = {"messages": out, "tool_rounds": state.get("tool_rounds", 0) + 1}
        if env.silence is not None:
            update["action_plan"] = {"action": "silent", "reason": env.silence}
        return update

    async def _call_tool(
        self, ctx: TurnContext, env: ToolEnv, call_id: str, name: str, args: Any
    ) -> ToolRecord:
        shown = args if isinstance(args, dict) else {"raw": str(args)}
        if ctx.on_tool_event:
            await ctx.on_tool_event(
                {"type": "response.tool_call", "call_id": call_id, "name": name, "arguments": shown}
            )

        tool = self.tools.get(name)
        if tool is None or not tool.consequential:
            return await self._run_recorded(ctx, env, call_id, name, args, shown)
        try:  # a call that would be refused anyway is refused before the user is asked
            parsed = tool.parse(args)
            tool.check(parsed, env)
        except ToolError as e:
            outcome = ToolOutcome({"error": str(e)}, f"{name} refused: {e}")
            return await self._record(ctx, call_id, name, shown, False, outcome)
        if ctx.approve is None:
            msg = f"{name} needs the user's approval, which cannot be asked here."
            return await self._record(
                ctx, call_id, name, shown, False, ToolOutcome({"error": msg}, msg)
            )
        described = await tool.explained(parsed, env)
        decision = await self._approval(ctx, call_id, name, shown, described)
        return await self.run_decided(ctx, env, call_id, name, args, decision)

    async def run_decided(
        self, ctx: TurnContext, env: ToolEnv, call_id: str, name: str, args: Any, decision: Any
    ) -> ToolRecord:
        """A consequential call the user decided on (approvals.Decision): run with the
        approved or edited arguments (checked when it was asked), or record why not."""
        shown = args if isinstance(args, dict) else {"raw": str(args)}
        if decision.elsewhere:
            msg = f"The user answered ({decision.status}) on another device, which handled {name}."
            return await self._record(
                ctx, call_id, name, shown, False, ToolOutcome({"note": msg}, msg)
            )
        if not decision.go:
            why = decision.message or decision.status
            msg = f"The user did not approve {name} ({decision.status}): {why}"
            outcome = ToolOutcome({"error": msg}, f"{name} {decision.status} by the user")
            return await self._record(ctx, call_id, name, shown, False, outcome)
        if decision.arguments is not None:  # edited by the user
            args = shown = decision.arguments
        return await self._run_recorded(ctx, env, call_id, name, args, shown, checked=True)

    async def _run_recorded(
        self,
        ctx: TurnContext,
        env: ToolEnv,
        call_id: str,
        name: str,
        args: Any,
        shown: dict[str, Any],
        checked: bool = False,
    ) -> ToolRecord:
        async def run_and_record() -> ToolRecord:
            ok, outcome = await self._execute(name, args, env, checked)
            return await self._record(ctx, call_id, name, shown, ok, outcome)

        # Shielded: a barge-in during the call cancels the turn, not the tool, so its effect
        # is whole, logged and reported (ctx.settle_tools waits for it); later calls of the
        # round never start.
        task = asyncio.ensure_future(run_and_record())
        ctx.running_tools.add(task)
        task.add_done_callback(ctx.running_tools.discard)
        return await asyncio.shield(task)

    async def _approval(
        self, ctx: TurnContext, call_id: str, name: str, args: dict[str, Any], description: str
    ) -> Any:
        """Wait for the user's decision (server/agent/approvals.py), telling the stream the
        turn is alive meanwhile so the LLM idle timeout does not fire. A cancel (barge-in,
        disconnect) stops the wait; the approval stays pending and is asked again later."""
        assert ctx.approve is not None
        ask = asyncio.ensure_future(ctx.approve(call_id, name, args, description))
        try:
            while True:
                done, _ = await asyncio.wait({ask}, timeout=1.0)
                if done:
                    return ask.result()
                ctx.emit(ToolProgress(name))
        finally:
            ask.cancel()

    async def _record(
        self,
        ctx: TurnContext,
        call_id: str,
        name: str,
        args: dict[str, Any],
        ok: bool,
        outcome: ToolOutcome,
    ) -> ToolRecord:
        rec = ToolRecord(call_id, name, args, ok, outcome.summary, to_json(outcome.result))
        ctx.tool_log.append(rec)
        if ctx.on_tool_event:
            await ctx.on_tool_event(
                {
                    "type": "response.tool_result",
                    "call_id": call_id,
                    "name": name,
                    "ok": ok,
                    "summary": outcome.summary,
                    "data": outcome.data,
                }
            )
        return rec

    async def _execute(
        self, name: str, args: Any, env: ToolEnv, checked: bool = False
    ) -> tuple[bool, ToolOutcome]:
        """(ok, outcome); a refusal or failure becomes an error the model reads.
        ``checked``: the tool's own check passed when the user was asked."""
        tool = self.tools.get(name)
        t0 = time.perf_counter()
        try:
            if tool is None:
                raise ToolError(f"There is no tool named {name!r}.")
            parsed = tool.parse(args)
            if not checked:
                tool.check(parsed, env)
            async with asyncio.timeout(self.tool_timeout_s):
                outcome = await tool.run(parsed, env)
            ok = True
        except ToolError as e:
            ok, outcome = False, ToolOutcome({"error": str(e)}, f"{name} refused: {e}")
        except TimeoutError:
            msg = f"{name} took longer than {self.tool_timeout_s:g} s and was stopped."
            ok, outcome = False, ToolOutcome({"error": msg}, msg)
        except Exception as e:
            log.exception("tool_failed", tool=name)
            msg = f"{name} failed because of a server error ({type(e).__name__})."
            ok, outcome = False, ToolOutcome({"error": msg}, msg)
        log.info("tool_done", tool=name, ok=ok, ms=round((time.perf_counter() - t0) * 1000, 2))
        return ok, outcome
