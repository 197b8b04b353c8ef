"""Loopback HTTP test doubles for external model services.

The fakes are real HTTP/1.1 servers on 127.0.0.1 (port 0), each running its own asyncio loop
in a daemon thread, so sync tests, async tests (any loop) and separate benchmark processes can
all talk to them with their real clients. They are written on raw asyncio streams rather than
uvicorn because uvicorn's shutdown sleeps at least 100 ms, which adds up over a function-scoped
fixture, and because every accepted socket must get TCP_NODELAY (without it each response end
stalls about 40 ms on delayed ACKs and every latency figure is wrong).

Import the fakes from their modules: ``tests.fakes.openai_server.FakeOpenAI`` and
``tests.fakes.fish_server.FakeFish`` (also re-exported lazily from this package).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

__all__ = [
    "FakeFish",
    "FakeOpenAI",
    "HttpRequest",
    "HttpResponse",
    "LoopbackServer",
    "RequestLog",
]

_MAX_HEADER_BYTES = 64 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def __getattr__(name: str) -> Any:
    """Re-export the fakes lazily so importing this package never imports both servers."""
    if name == "FakeOpenAI":
        from tests.fakes.openai_server import FakeOpenAI

        return FakeOpenAI
    if name == "FakeFish":
        from tests.fakes.fish_server import FakeFish

        return FakeFish
    raise AttributeError(name)


@dataclass
class HttpRequest:
    """One parsed HTTP request; header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    t: float  # time.monotonic() when the request head arrived

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """The body decoded as JSON (raises ValueError when it is not)."""
        return json.loads(self.body or b"null")


@dataclass
class HttpResponse:
    """A response: a fixed body, or an async iterator of chunks sent with chunked encoding."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200) -> HttpResponse:
        """A JSON response."""
        payload = json.dumps(data, ensure_ascii=False).encode()
        return cls(status=status, headers={"content-type": "application/json"}, body=payload)


class RequestLog:
    """A thread-safe, append-only list of request records (plain dicts).

    The server thread appends while the test thread reads; reads return snapshots so a test
    can iterate without racing the server.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[dict[str, Any]] = []

    def append(self, record: dict[str, Any]) -> None:
        """Add one record."""
        with self._lock:
            self._items.append(record)

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the list (the records themselves are shared)."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._items.clear()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Records whose ``kind`` equals ``kind``."""
        return [r for r in self.snapshot() if r.get("kind") == kind]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.snapshot())

    def __getitem__(self, index: int) -> dict[str, Any]:
        with self._lock:
            return self._items[index]

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"


class _Conn:
    """Buffered reader over one connection, so EOF can be watched without losing bytes."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self.buf = bytearray()
        self.eof = False

    async def fill(self) -> bool:
        """Read more bytes into the buffer; False at EOF."""
        if self.eof:
            return False
        try:
            data = await self._reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def read_until(self, sep: bytes, limit: int) -> bytes | None:
        """Bytes up to and including ``sep``, or None at EOF."""
        while True:
            idx = self.buf.find(sep)
            if idx >= 0:
                out = bytes(self.buf[: idx + len(sep)])
                del self.buf[: idx + len(sep)]
                return out
            if len(self.buf) > limit or not await self.fill():
                return None

    async def read_exactly(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes, or None at EOF."""
        while len(self.buf) < n:
            if not await self.fill():
                return None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class LoopbackServer:
    """Base class: a minimal HTTP/1.1 server (keep-alive, chunked both ways) in its own thread.

    Subclasses implement :meth:`handle`. Streamed responses are cancelled as soon as the client
    closes the connection, so a fake can record that a client aborted (barge-in tests).
    """

    def __init__(self) -> None:
        self.requests = RequestLog()
        self.port = 0
        self.nodelay: list[bool] = []  # TCP_NODELAY as read back from each accepted socket
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Bind 127.0.0.1 (port 0 the first time, the same port again after stop(): a server
        that went down and came back) and serve from a daemon thread; returns once accepting."""
        if self.running:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"{type(self).__name__}:{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        if self._error is not None:
            raise RuntimeError(f"{type(self).__name__} failed to start") from self._error
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, then join the thread."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None or loop is None or stop_event is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop_event.set)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        server = await asyncio.start_server(self._on_connect, sock=sock, limit=_MAX_HEADER_BYTES)
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for task in list(self._conn_tasks):
                task.cancel()
            if self._conn_tasks:
                await asyncio.wait(self._conn_tasks, timeout=2)
            # Close connections whose handler never ran too. A connection accepted while
            # close() runs can still outlive this loop (CPython gh-109564, open): when it is
            # collected, pytest shows a PytestUnraisableExceptionWarning from Server._wakeup.
            server.close_clients()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)

    # ---- HTTP ------------------------------------------------------------------------------

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Produce the response for one request (subclasses override)."""
        return HttpResponse.json({"error": "not implemented"}, status=404)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.nodelay.append(bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        conn = _Conn(reader)
        try:
            while await self._one_exchange(conn, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self._conn_tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _read_request(self, conn: _Conn, writer: asyncio.StreamWriter) -> HttpRequest | None:
        head = await conn.read_until(b"\r\n\r\n", _MAX_HEADER_BYTES)
        if head is None:
            return None
        t = time.monotonic()
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        path, _, query = target.partition("?")
        body = b""
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits for this
            await writer.drain()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = await conn.read_until(b"\r\n", 1024)
                if size_line is None:
                    return None
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    await conn.read_until(b"\r\n", _MAX_HEADER_BYTES)  # trailers end
                    break
                data = await conn.read_exactly(size + 2)
                if data is None:
                    return None
                parts.append(data[:-2])
            body = b"".join(parts)
        elif (length := int(headers.get("content-length", "0") or 0)) > 0:
            data = await conn.read_exactly(length)
            if data is None:
                return None
            body = data
        return HttpRequest(method.upper(), path, query, headers, body, t)

    async def _one_exchange(self, conn: _Conn, writer: asyncio.StreamWriter) -> bool:
        request = await self._read_request(conn, writer)
        if request is None:
            return False
        keep_alive = request.headers.get("connection", "").lower() != "close"
        try:
            response = await self.handle(request)
        except Exception as exc:  # a bug in a fake must not hang the client
            response = HttpResponse.json(
                {"error": {"message": f"fake server error: {exc!r}", "type": "server_error"}},
                status=500,
            )
        head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.stream is None:
            headers["content-length"] = str(len(response.body))
        else:
            headers["transfer-encoding"] = "chunked"
        headers.setdefault("connection", "keep-alive" if keep_alive else "close")
        head += [f"{k}: {v}" for k, v in headers.items()]
        head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if response.stream is None:
            writer.write(head_bytes + response.body)
            await writer.drain()
            return keep_alive
        writer.write(head_bytes)
        await writer.drain()
        completed = await self._pump(conn, writer, response.stream)
        return keep_alive and completed

    async def _pump(
        self, conn: _Conn, writer: asyncio.StreamWriter, stream: AsyncIterator[bytes]
    ) -> bool:
        """Send a chunked body; cancel it when the client hangs up. True if fully sent."""

        async def send_all() -> None:
            async for chunk in stream:
                if chunk:
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

        async def watch_eof() -> None:
            while await conn.fill():
                pass  # pipelined bytes stay buffered for the next request

        sender = asyncio.create_task(send_all())
        watcher = asyncio.create_task(watch_eof())
        try:
            await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, watcher):
                if not task.done():
                    task.cancel()
            await asyncio.gather(sender, watcher, return_exceptions=True)
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        return sender.done() and not sender.cancelled() and sender.exception() is None
