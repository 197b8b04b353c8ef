"""A Python client that speaks DesktopMatePlus v1 exactly as desktop-homunculus's
desktopmate-bridge (mods/desktopmate-bridge/src/service.ts) does: `authorize` with token,
user_id and agent_id on open; `chat_message` with content, session_id, user_id, agent_id,
reference_id and images, where JSON.stringify leaves out what is undefined (an empty
reference_id is undefined); `interrupt_stream` with no turn id; `pong` for every `ping`;
tts_chunks ordered by sequence, flushed at stream_end. Its REST calls follow ui/src/api.ts."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import wave
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect


@dataclass
class BridgeConfig:
    """config.yaml of the mod (its defaults: user "default", agent "yuri")."""

    ws_url: str
    rest_url: str
    token: str = "<auth_token>"
    user_id: str = "default"
    agent_id: str = "yuri"
    reference_id: str = ""


class DmpClient:
    def __init__(self, conn: ClientConnection, config: BridgeConfig, answer_pings: bool) -> None:
        self.conn = conn
        self.config = config
        self.answer_pings = answer_pings
        self.events: list[dict[str, Any]] = []
        self.closed: asyncio.Future[tuple[int | None, str]] = asyncio.Future()
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, config: BridgeConfig, *, answer_pings: bool = True, authorize: bool = True
    ) -> DmpClient:
        conn = await connect(config.ws_url, max_size=32 << 20, open_timeout=10)
        client = cls(conn, config, answer_pings)
        if authorize:
            await client.send(
                {
                    "type": "authorize",
                    "token": config.token,
                    "user_id": config.user_id,
                    "agent_id": config.agent_id,
                }
            )
        return client

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                msg = json.loads(raw)
                msg["_t"] = time.monotonic()
                self.events.append(msg)
                if msg.get("type") == "ping" and self.answer_pings:
                    await self.send({"type": "pong"})
                self._new.set()
        except Exception:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result((self.conn.close_code, self.conn.close_reason or ""))
            self._new.set()

    async def send(self, payload: dict[str, Any]) -> None:
        """JSON.stringify: keys whose value is undefined (None here) are left out."""
        await self.conn.send(json.dumps({k: v for k, v in payload.items() if v is not None}))

    async def send_message(
        self,
        content: str,
        session_id: str | None = None,
        images: list[str] | None = None,
        *,
        agent_id: str | None = None,
        tts_enabled: bool | None = None,
    ) -> None:
        """The mod's sendMessage RPC; images are data URLs (as its capture tools make).
        ``agent_id`` / ``tts_enabled``: what other DMP clients (Mate-EnginePlus) vary."""
        await self.send(
            {
                "type": "chat_message",
                "content": content,
                "session_id": session_id,
                "user_id": self.config.user_id,
                "agent_id": agent_id or self.config.agent_id,
                "tts_enabled": tts_enabled,
                "reference_id": self.config.reference_id or None,
                "images": [
                    {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}
                    for url in images
                ]
                if images
                else None,
            }
        )

    async def interrupt(self) -> None:
        await self.send({"type": "interrupt_stream"})

    async def wait_for(
        self, type_: str, after: int = 0, timeout: float = 20.0, **match: Any
    ) -> dict[str, Any]:
        """The first event of this type (and field values) at index >= after."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events[after:]:
                if ev.get("type") == type_ and all(ev.get(k) == v for k, v in match.items()):
                    return ev
            if self.closed.done():
                raise ConnectionError(f"closed {self.closed.result()} before {type_}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {type_}; got {[e.get('type') for e in self.events]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass

    async def turn(
        self, content: str, session_id: str | None = None, images: list[str] | None = None
    ) -> Turn:
        """Send a message and collect its turn up to stream_end."""
        start = len(self.events)
        await self.send_message(content, session_id, images)
        begin = await self.wait_for("stream_start", after=start)
        end = await self.wait_for("stream_end", after=start, turn_id=begin["turn_id"])
        return Turn(self.events[self.events.index(begin) : self.events.index(end) + 1])

    def of_type(self, type_: str, after: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.events[after:] if e.get("type") == type_]

    async def close(self) -> None:
        await self.conn.close()
        self._reader.cancel()


class Turn:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.start = events[0]
        self.end = events[-1]

    @property
    def tokens(self) -> str:
        return "".join(e["chunk"] for e in self.events if e["type"] == "stream_token")

    @property
    def chunks(self) -> list[dict[str, Any]]:
        """tts_chunks as the mod's TtsChunkQueue plays them: by sequence."""
        return sorted(
            (e for e in self.events if e["type"] == "tts_chunk"), key=lambda e: e["sequence"]
        )


def wav_info(audio_b64: str) -> tuple[int, int, float]:
    """(sample rate, channels, seconds) of a base64 WAV."""
    with wave.open(io.BytesIO(base64.b64decode(audio_b64))) as w:
        return w.getframerate(), w.getnchannels(), w.getnframes() / w.getframerate()


class BridgeRest:
    """ui/src/api.ts: the calls the mod's UI makes (no token: it sends none)."""

    def __init__(self, config: BridgeConfig, headers: dict[str, str] | None = None) -> None:
        self.config = config
        self.http = httpx.AsyncClient(base_url=config.rest_url, headers=headers, timeout=20)

    def _ids(self) -> dict[str, str]:
        return {"user_id": self.config.user_id, "agent_id": self.config.agent_id}

    async def sessions(self) -> httpx.Response:
        return await self.http.get(f"/v1/stm/sessions?{urlencode(self._ids())}")

    async def history(self, session_id: str) -> httpx.Response:
        q = urlencode({"session_id": session_id} | self._ids())
        return await self.http.get(f"/v1/stm/get-chat-history?{q}")

    async def delete(self, session_id: str) -> httpx.Response:
        return await self.http.delete(f"/v1/stm/sessions/{session_id}?{urlencode(self._ids())}")

    async def rename(self, session_id: str, name: str) -> httpx.Response:
        return await self.http.patch(f"/v1/stm/sessions/{session_id}/metadata", json={"name": name})

    async def aclose(self) -> None:
        await self.http.aclose()
