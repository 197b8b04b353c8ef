"""Run the real app under uvicorn on a free loopback port, in its own thread and event loop,
and talk to it with real HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from server.app import create_app
from server.cli import loop_factory, uvicorn_config
from server.config import Settings


class ServerThread:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(self.app, settings, log_level="warning"))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, **params: str) -> str:
        from urllib.parse import urlencode

        q = urlencode({k: v for k, v in params.items() if v is not None})
        return f"ws://127.0.0.1:{self.port}/v1/ws" + (f"?{q}" if q else "")

    @property
    def services(self) -> Any:
        return self.app.state.services

    def _run(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self.sock])

        asyncio.run(serve(), loop_factory=loop_factory(self.settings))  # uvloop, as served

    async def call[T](self, coro: Coroutine[Any, Any, T]) -> T:
        """Await a coroutine on the server's own event loop: the store's connections and
        locks belong to that loop, not to the test's."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextmanager
def running_server(settings: Settings) -> Iterator[ServerThread]:
    srv = ServerThread(settings).start()
    try:
        yield srv
    finally:
        srv.stop()


class WsClient:
    """A real WebSocket client that keeps every event it receives, in order."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.events: list[dict[str, Any]] = []
        self.binary: list[bytes] = []
        self._seen = 0

    async def send(self, event: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(event, ensure_ascii=False))

    async def send_raw(self, data: str | bytes) -> None:
        await self.conn.send(data)

    async def next_event(self, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            msg = await asyncio.wait_for(self.conn.recv(), timeout)
            if isinstance(msg, bytes):
                self.binary.append(msg)
                continue
            ev = json.loads(msg)
            ev["_t"] = time.monotonic()
            self.events.append(ev)
            return ev

    async def wait_for(self, type_: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        """Next event of this type (and field values), keeping everything seen on the way."""
        deadline = time.monotonic() + timeout
        for ev in self.events[self._seen :]:
            self._seen += 1
            if ev["type"] == type_ and all(ev.get(k) == v for k, v in match.items()):
                return ev
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {type_} event; got {[e['type'] for e in self.events]}")
            try:
                ev = await self.next_event(left)
            except TimeoutError:
                got = [e["type"] for e in self.events[-30:]]
                raise TimeoutError(f"no {type_} {match or ''} event; last events: {got}") from None
            self._seen += 1
            if ev["type"] == type_ and all(ev.get(k) == v for k, v in match.items()):
                return ev

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


async def open_ws(server: ServerThread, **params: str) -> WsClient:
    conn = await connect(server.ws_url(**params), max_size=8 << 20, open_timeout=10)
    return WsClient(conn)


async def text_turn(ws: WsClient, text: str) -> tuple[list[str], dict[str, Any]]:
    """Send a typed turn; return its text deltas and its response.done event."""
    await ws.send({"type": "input_text", "text": text})
    created = await ws.wait_for("response.created")
    done = await ws.wait_for("response.done", response_id=created["response_id"])
    deltas = [
        e["delta"]
        for e in ws.events
        if e["type"] == "response.text.delta" and e["response_id"] == created["response_id"]
    ]
    return deltas, done


async def avatar_ws(server: ServerThread, token: str, persona: str = "emma") -> WsClient:
    """A /v1/ws session that asked for mouth timelines (session.updated received)."""
    ws = await open_ws(server, persona=persona, token=token)
    await ws.wait_for("session.created")
    await ws.send({"type": "session.update", "session": {"visemes": True}})
    await ws.wait_for("session.updated")
    return ws


async def played_turn(ws: WsClient, text: str) -> dict[str, Any]:
    """A typed turn whose reply audio the client reports as all played (as a player does
    when it finishes); returns its response.done."""
    await ws.send({"type": "input_text", "text": text})
    created = await ws.wait_for("response.created")
    rid = created["response_id"]
    audio = await ws.wait_for("response.audio.done", timeout=30, response_id=rid)
    played = {"response_id": rid, "played_ms": audio["duration_ms"]}
    await ws.send({"type": "response.audio.played", **played})
    return await ws.wait_for("response.done", timeout=30, response_id=rid)


def audio_chunk_seconds(ws: WsClient) -> dict[int, float]:
    """Seconds of pcm16 24 kHz audio in each 0x11 chunk received, by seq."""
    out = {}
    for frame in ws.binary:
        kind, _, seq = struct.unpack(">BII", frame[:9])
        if kind == 0x11 and frame[9:]:
            out[seq] = len(frame[9:]) / 2 / 24_000
    return out
