"""The agent's tools, one module per family; `default_registry()` holds them all."""

from server.agent.tools import memory, schedule, screen, silence
from server.agent.tools.base import Tool, ToolEnv, ToolError, ToolOutcome, ToolRegistry, to_json


def default_registry() -> ToolRegistry:
    return ToolRegistry([*memory.TOOLS, *schedule.TOOLS, *screen.TOOLS, *silence.TOOLS])


__all__ = [
    "Tool",
    "ToolEnv",
    "ToolError",
    "ToolOutcome",
    "ToolRegistry",
    "default_registry",
    "to_json",
]
