"""A real MCP server (the official SDK's MCPServer) for tests, over stdio or streamable HTTP.

    python tests/fakes/mcp_server.py stdio EFFECTS_FILE
    python tests/fakes/mcp_server.py http EFFECTS_FILE PORT

`set_alarm` and `set_routine` (typed and nested arguments) append a JSON line to EFFECTS_FILE, so a test can prove a consequential call
ran (approve, edit) or never ran (reject, expiry). `slow` sleeps (per-call timeout tests).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("weather", log_level="WARNING")
EFFECTS = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("effects.jsonl")


@server.tool()
def get_forecast(city: str) -> str:
    """Tomorrow's weather for a city."""
    return f"{city}: sunny, 21 C"


@server.tool()
def set_alarm(time: str, label: str = "") -> str:
    """Set an alarm on the user's phone."""
    with EFFECTS.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"tool": "set_alarm", "time": time, "label": label}) + "\n")
    return f"alarm set for {time}"


@server.tool()
def set_routine(name: str, repeat: int, loud: bool, steps: list[str]) -> str:
    """Save a morning routine on the user's phone."""
    with EFFECTS.open("a", encoding="utf-8") as f:
        row = {"tool": "set_routine", "name": name, "repeat": repeat, "loud": loud, "steps": steps}
        f.write(json.dumps(row) + "\n")
    return f"routine {name} saved"


@server.tool()
async def slow(seconds: float) -> str:
    """Wait a while."""
    await asyncio.sleep(seconds)
    return "done"


if __name__ == "__main__":
    if sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[3]))
    else:
        server.run("stdio")
