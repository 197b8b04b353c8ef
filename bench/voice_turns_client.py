"""bench/voice_turns.py's desktop client: the test harness's WebSocket client with reply audio
stamped as it arrives, and the session, reply and cancel steps every row uses."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from websockets.asyncio.client import connect

from bench.procs import ServerProcess


class Client:
    """tests.server_harness.WsClient that timestamps reply audio as it arrives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.audio_at: dict[str, float] = {}  # response_id -> first 0x11 frame received

    @classmethod
    async def open(cls, url: str) -> Client:
        from tests.server_harness import WsClient

        ws = WsClient(await connect(url, max_size=8 << 20, open_timeout=10))
        c = cls(ws)
        recv = ws.conn.recv

        async def stamped_recv(*args: Any, **kwargs: Any) -> Any:
            # stamped as it is read, not when the next JSON event arrives: that one may come
            # much later (the stamp read 18-290 ms late, varying by run)
            msg = await recv(*args, **kwargs)
            if isinstance(msg, bytes) and msg[:1] == b"\x11":
                c.audio_at.setdefault(f"resp_{int.from_bytes(msg[1:5], 'big')}", time.monotonic())
            return msg

        ws.conn.recv = stamped_recv  # type: ignore[method-assign]
        return c

    async def until(self, pred: Any, timeout: float) -> dict[str, Any] | None:
        """Read events until ``pred(event)``; None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                ev = await self.ws.next_event(timeout=min(0.2, deadline - time.monotonic()))
                if pred(ev):
                    return ev
        return None

    async def drain(self, seconds: float) -> None:
        await self.until(lambda _e: False, seconds)

    def of(self, kind: str, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.ws.events[since:] if e["type"] == kind]


async def session(server: ServerProcess, user: str, persona: str = "emma") -> Client:
    c = await Client.open(server.ws_url(persona=persona, token=user))
    await c.until(lambda e: e["type"] == "session.created", 20)
    return c


async def request_reply(c: Client, mic: Any) -> str:
    """A long reply by text; returns its id once the client plays it."""
    await c.ws.send({"type": "input_text", "text": "Please tell me a long story."})
    ev = await c.until(lambda e: e["type"] == "response.created", 30)
    assert ev is not None
    rid = ev["response_id"]
    while rid not in mic.played:
        await c.drain(0.05)
    return rid


async def cancel(c: Client, mic: Any, rid: str) -> None:
    await c.ws.send({"type": "response.cancel"})
    mic.stop_playback(rid)
    await c.until(lambda e: e["type"] == "response.done" and e["response_id"] == rid, 20)
