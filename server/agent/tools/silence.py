"""stay_silent: the model's own decision not to answer (seed 000's 'silence' branch of
reason_and_plan, decided by the LLM). The turn ends with no text and no audio."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from server.agent.tools.base import Tool, ToolEnv, ToolOutcome


class StaySilent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=500, description="Why")]


async def stay_silent(args: StaySilent, env: ToolEnv) -> ToolOutcome:
    env.silence = args.reason
    return ToolOutcome({"silent": True}, f"stayed silent: {args.reason}")


TOOLS = [
    Tool(
        "stay_silent",
        "Say nothing this turn, when a reply would interrupt or is not wanted (e.g. the user "
        "is talking to someone else or thinking aloud). Call it alone, with no text.",
        StaySilent,
        stay_silent,
    )
]
