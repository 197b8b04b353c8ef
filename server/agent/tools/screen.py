"""get_screen_context: a fresh description of the user's screen, asked by the model when
the conversation needs it (it replaced a keyword regex deciding before the model ran)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from server.agent.tools.base import Tool, ToolEnv, ToolOutcome

NO_SCREEN = (
    "No screen is available: the user is not sharing a screen with you right now. Say so "
    "plainly; do not guess what is on it."
)


class GetScreenContext(BaseModel):
    model_config = ConfigDict(extra="forbid")


async def get_screen_context(_args: GetScreenContext, env: ToolEnv) -> ToolOutcome:
    p = env.perception
    text = None
    if p is not None:
        text = await p.fresh_visual(env.settings.vision_wait_s) or p.latest_visual()
    if not text:
        return ToolOutcome({"available": False, "note": NO_SCREEN}, "no screen to look at")
    return ToolOutcome({"available": True, "screen": text}, "looked at the screen")


TOOLS = [
    Tool(
        "get_screen_context",
        "Look at the user's screen now: returns a fresh description of what is on it.",
        GetScreenContext,
        get_screen_context,
    )
]
