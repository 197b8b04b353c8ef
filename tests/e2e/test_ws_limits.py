"""Limits agree with the docs (issue 11, items 6 and 8): the transport lets every documented
frame through, rate_limited reports the real number dropped, and per-user limits hold
across a user's sockets."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import WsClient, open_ws


def image_frame(size: int) -> str:
    """An input_image text frame of exactly ``size`` UTF-8 bytes (valid base64 inside)."""
    head, tail = '{"type":"input_image","source":"screen","jpeg_b64":"', '"}'
    b64_len = (size - len(head) - len(tail)) // 4 * 4
    frame = head + "QUJD" * (b64_len // 4) + '"' + " " * (size - len(head) - b64_len - 2) + "}"
    assert len(frame.encode()) == size
    return frame


async def test_the_largest_documented_input_image_reaches_the_session(
    server_factory, llm: FakeOpenAI
):
    server = server_factory(llm)
    limit = server.settings.ws_max_image_text_bytes
    assert limit == 1_399_125  # the number docs/protocol.md gives for the defaults
    ws = await open_ws(server, persona="emma", token="big")
    await ws.wait_for("session.created")
    await ws.send_raw(image_frame(limit))
    err = await ws.wait_for("error", timeout=30)
    assert err["code"] == "invalid_image"  # read and judged, not closed with 1009
    await ws.send_raw(image_frame(limit + 1))
    err = await ws.wait_for("error", timeout=30)
    assert err["code"] == "message_too_large" and str(limit) in err["message"]
    await ws.send({"type": "ping", "id": 1})
    await ws.wait_for("pong", id=1)


async def drain(ws: WsClient, quiet_s: float) -> None:
    """Read until nothing arrives for ``quiet_s``."""
    try:
        while True:
            await ws.next_event(timeout=quiet_s)
    except TimeoutError:
        pass


async def test_rate_limited_reports_every_dropped_frame(server_factory, llm: FakeOpenAI):
    server = server_factory(llm, ws_max_messages_per_s=100, ws_user_max_messages_per_s=10_000)
    ws = await open_ws(server, persona="emma", token="flood")
    await ws.wait_for("session.created")
    sent = 2000
    frames = [json.dumps({"type": "ping", "id": i}) for i in range(sent)]
    for f in frames:
        await ws.conn.send(f)
    await drain(ws, 1.5)
    pongs = len(ws.of_type("pong"))
    reports = ws.of_type("error")
    assert reports and all(r["code"] == "rate_limited" for r in reports)
    dropped = sum(r["dropped"] for r in reports)
    print(
        f"\nflood: {sent} pings, {pongs} answered, {dropped} reported dropped, {len(reports)} reports"
    )
    assert pongs + dropped == sent
    assert dropped > sent // 2
    assert len(reports) <= 3  # one per burst (or per second), not one per frame
    assert f"{reports[0]['dropped']} were dropped" in reports[0]["message"]


async def test_a_users_sockets_share_one_message_limit(server_factory, llm: FakeOpenAI):
    server = server_factory(llm, ws_max_messages_per_s=1000, ws_user_max_messages_per_s=100)
    a = await open_ws(server, persona="emma", token="multi")
    b = await open_ws(server, persona="emma", token="multi")
    await a.wait_for("session.created")
    await b.wait_for("session.created")

    async def flood(ws: WsClient) -> None:
        for i in range(300):
            await ws.send({"type": "ping", "id": i})

    await asyncio.gather(flood(a), flood(b))
    await asyncio.gather(drain(a, 1.5), drain(b, 1.5))
    pongs = len(a.of_type("pong")) + len(b.of_type("pong"))
    reports = a.of_type("error") + b.of_type("error")
    assert {r["limit"] for r in reports} == {"user"}
    assert pongs + sum(r["dropped"] for r in reports) == 600
    assert pongs < 300  # each socket alone was far under its own limit of 1000/s


async def test_a_user_may_have_only_so_many_sessions_open(server_factory, llm: FakeOpenAI):
    server = server_factory(llm, ws_max_sessions_per_user=2)
    first = await open_ws(server, persona="emma", token="tabs")
    second = await open_ws(server, persona="emma", token="tabs")
    await first.wait_for("session.created")
    await second.wait_for("session.created")
    third = await open_ws(server, persona="emma", token="tabs")
    err = await third.wait_for("error")
    assert err["code"] == "too_many_sessions" and err["fatal"] is True
    assert "WS_MAX_SESSIONS_PER_USER" in err["message"]
    with pytest.raises(ConnectionClosed) as closed:
        await third.conn.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    # another user is not affected, and closing a session frees its place
    other = await open_ws(server, persona="emma", token="someone-else")
    await other.wait_for("session.created")
    await first.conn.close()
    for _ in range(100):
        if server.services.user_limits.open_sessions("tabs") < 2:
            break
        await asyncio.sleep(0.05)
    again = await open_ws(server, persona="emma", token="tabs")
    await again.wait_for("session.created")
