"""A client that stops reading must not make the server buffer without bound: the
per-session outbound queue is bounded, and when it stays full for WS_SEND_TIMEOUT_S the
session is dropped (see docs/protocol.md, back-pressure)."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import httpx

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import open_ws

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def masked_text_frame(text: str) -> bytes:
    """A client->server text frame (clients must mask), built by hand: this client is a raw
    socket so that it can really stop reading, which a WebSocket library never does."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    n = len(payload)
    header += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def connect_and_stop_reading(port: int, token: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /v1/ws?persona=emma&token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Upgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


async def wait_until_stuck(llm: FakeOpenAI) -> None:
    """Until the fake LLM's last reply stopped flowing: the session's queue and socket are
    full, so the server stopped reading the model."""
    sent, stable_since = -1, 0.0
    for _ in range(400):
        await asyncio.sleep(0.05)
        reqs = llm.chat_requests(mem0=False)
        now = reqs[-1]["tokens_sent"] if reqs else -1
        if now != sent:
            sent, stable_since = now, asyncio.get_running_loop().time()
        elif sent > 0 and asyncio.get_running_loop().time() - stable_since > 2.0:
            return
    raise AssertionError(f"the reply never got stuck ({sent} tokens sent)")


async def test_a_client_that_stops_reading_is_dropped_not_buffered(server_factory, llm: FakeOpenAI):
    server = server_factory(
        llm, ws_outbound_queue=8, ws_send_timeout_s=1.0, llm_max_tokens=8000, memory_enabled=False
    )
    token = ["x" * 3000 + " "]
    llm.queue_reply(tokens=token * 4000, token_ms=0)  # 12 MB of reply text
    sock = connect_and_stop_reading(server.port, "sloth")
    sock.sendall(masked_text_frame(json.dumps({"type": "input_text", "text": "flood me"})))
    store = server.services.store
    try:
        for _ in range(300):  # the session must end by itself, well before 30 s
            await asyncio.sleep(0.1)
            sessions = await server.call(store.list_sessions("sloth"))
            if sessions and sessions[0].status == "paused":
                break
        assert sessions and sessions[0].status == "paused", "the stuck session was not dropped"
        msgs = []
        for _ in range(50):
            msgs = await server.call(store.list_messages("sloth", sessions[0].id))
            if len(msgs) == 2:
                break
            await asyncio.sleep(0.1)
        reply = msgs[-1]
        assert reply.role == "assistant"
        # only what fitted in the bounded queue and the socket was taken from the LLM
        assert 0 < len(reply.content) < len(token[0]) * 4000 // 2
    finally:
        sock.close()


async def test_a_reminder_not_written_to_the_socket_is_retried_not_marked_delivered(
    server_factory, llm: FakeOpenAI
):
    """Issue 11, item 11: the reminder falls due while its session's client has stopped
    reading; the event never reaches the socket, so the attempt is recorded as failed with
    its reason, and the next session of the user gets it after the back-off."""
    server = server_factory(
        llm,
        ws_outbound_queue=8,
        ws_send_timeout_s=8.0,
        llm_max_tokens=8000,
        memory_enabled=False,
        reminder_retry_backoff_s=0.5,
    )
    llm.queue_reply(tokens=["x" * 3000 + " "] * 4000, token_ms=0)  # fills every buffer
    sock = connect_and_stop_reading(server.port, "busy")
    store = server.services.store
    try:
        sock.sendall(masked_text_frame(json.dumps({"type": "input_text", "text": "flood me"})))
        await wait_until_stuck(llm)
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.post(
                "/v1/reminders",
                json={"text": "stretch", "in_seconds": 0},
                headers={"Authorization": "Bearer busy"},
            )
        assert r.status_code == 201
        rid = r.json()["id"]
        rec = None
        for _ in range(600):  # 8 s send timeout; a loaded host may take a while longer
            rec = await server.call(store.get_reminder("busy", rid))
            if rec is not None and rec.attempts:
                break
            await asyncio.sleep(0.1)
        assert rec is not None and rec.status == "pending" and rec.attempts == 1
        assert "before the event was written" in (rec.last_error or "")
    finally:
        sock.close()
    ws = await open_ws(server, persona="emma", token="busy")
    got = await ws.wait_for("reminder", timeout=30)
    assert got["id"] == rid and got["text"] == "stretch"
    for _ in range(300):
        rec = await server.call(store.get_reminder("busy", rid))
        if rec is not None and rec.status == "delivered":
            break
        await asyncio.sleep(0.1)
    assert rec is not None and rec.status == "delivered" and rec.attempts == 1


def read_events_until(sock: socket.socket, last_type: str) -> list[dict]:
    """Server->client text frames (unmasked, unfragmented) read off the raw socket."""

    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "the server closed the connection"
            buf += chunk
        return buf

    events: list[dict] = []
    sock.settimeout(30)
    while not events or events[-1]["type"] != last_type:
        head = exactly(2)
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(exactly(2), "big")
        elif n == 127:
            n = int.from_bytes(exactly(8), "big")
        payload = exactly(n)
        if head[0] & 0x0F == 0x1:
            events.append(json.loads(payload))
    return events


async def test_deltas_queued_for_a_stalled_client_go_out_joined_and_in_order(
    server_factory, llm: FakeOpenAI
):
    """Issue 16: text deltas of a reply that wait in the outbound queue (the client is not
    reading) leave as one frame of at most WS_DELTA_COALESCE_CHARS, not one frame each;
    the text, its order and response.done after the last delta stay the same."""
    server = server_factory(
        llm,
        ws_delta_coalesce_chars=8000,
        ws_send_timeout_s=30.0,
        llm_max_tokens=8000,
        memory_enabled=False,
    )
    # 2000 chars each, 6 MB: more than the socket buffers take, so the writer waits
    tokens = [f"{i:04d}" + "y" * 1995 + " " for i in range(3000)]
    llm.queue_reply(tokens=tokens, token_ms=1)
    sock = connect_and_stop_reading(server.port, "stalled")
    store = server.services.store
    try:
        sock.sendall(masked_text_frame(json.dumps({"type": "input_text", "text": "go"})))
        await wait_until_stuck(llm)  # the queue is full of joined frames: now read it all
        events = await asyncio.to_thread(read_events_until, sock, "response.done")
        sessions = await server.call(store.list_sessions("stalled"))
        msgs = await server.call(store.list_messages("stalled", sessions[0].id))
        assert msgs[-1].content == "".join(tokens) and not msgs[-1].interrupted
    finally:
        sock.close()
    kinds = [e["type"] for e in events]
    first, last = (
        kinds.index("response.text.delta"),
        len(kinds) - 1 - kinds[::-1].index("response.text.delta"),
    )
    assert set(kinds[first : last + 1]) == {"response.text.delta"}  # nothing in between
    assert kinds[-1] == "response.done" and events[-1]["text"] == "".join(tokens)
    deltas = [e["delta"] for e in events if e["type"] == "response.text.delta"]
    assert "".join(deltas) == "".join(tokens)
    # the writer waited for the socket: meanwhile deltas joined, up to the cap (4 x 2000)
    full = [d for d in deltas if d.count(" ") == 4]
    assert len(full) >= 100, f"{len(deltas)} frames for {len(tokens)} deltas"
