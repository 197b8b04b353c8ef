"""The ready line: printed only once the listening socket accepts connections.

uvicorn's ``Server.startup`` runs the app's lifespan (store, agent, model loading kicked
off), then starts serving on the sockets; ``started`` is set after that. Hooking the end of
``startup`` is the first moment a client that reads the line can connect."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn

from server import __version__


@dataclass(frozen=True)
class ReadyInfo:
    url: str
    port: int
    pid: int
    version: str
    token: str | None = None

    def json_line(self) -> str:
        body: dict[str, object] = {
            "event": "ready",
            "url": self.url,
            "port": self.port,
            "pid": self.pid,
            "version": self.version,
        }
        if self.token is not None:
            body["token"] = self.token
        return json.dumps(body)


def ready_info(host: str, port: int, token: str | None = None) -> ReadyInfo:
    shown = f"[{host}]" if ":" in host else host
    return ReadyInfo(f"http://{shown}:{port}", port, os.getpid(), __version__, token)


def announce(info: ReadyInfo, *, machine: bool) -> None:
    """The human line always; with ``machine`` the JSON line owns stdout and the human line
    goes to stderr, so a parent can read stdout line by line without parsing prose."""
    human = f"DesktopMate-Plus listening on {info.url}"
    if machine:
        print(human, file=sys.stderr, flush=True)
        print(info.json_line(), flush=True)
    else:
        print(human, flush=True)


class ReadyServer(uvicorn.Server):
    """A uvicorn server that calls ``on_ready`` once it is accepting connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self.interrupted = False  # stopped by Ctrl-C (SIGINT)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn raises the signal again after its graceful shutdown, but whether that
        # reaches us as a KeyboardInterrupt depends on timing: remember it ourselves
        if sig == signal.SIGINT:
            self.interrupted = True
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self._on_ready()
