"""Hostile WebSocket input (issue 11, items 4 and 7): every bad message gets an `error`
event, the socket stays open and usable, and everything the server sends is strict JSON."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import WsClient, open_ws, text_turn


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN/Infinity (a browser's JSON.parse does) and text that
    cannot be sent as UTF-8 (a lone surrogate)."""
    text.encode("utf-8")

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


# Text that no RFC 8259 parser accepts as a value: non-standard constants, lone UTF-16
# surrogates, 5,000 digits, nesting deeper than any real message (the fuzz tests use these).
NOT_JSON = [
    "NaN",
    "Infinity",
    "-Infinity",
    '"\\ud800"',
    '"x\\udfff"',
    '"\\udc00\\ud800"',
    "9" * 5000,
    "[" * 3000 + "]" * 3000,
    '{"a":' * 2000 + "1" + "}" * 2000,
]


async def expect_error_then_pong(ws: WsClient, raw: str | bytes, code: str, n: int) -> None:
    await ws.send_raw(raw)
    err = await ws.wait_for("error")
    assert err["code"] == code, (raw[:120], err)
    assert err["fatal"] is False and err["message"]
    await ws.send({"type": "ping", "id": n})
    await ws.wait_for("pong", id=n)


def landmarks(value: float = 0.5) -> list[list[float]]:
    pts = np.random.default_rng(0).uniform(0.3, 0.7, (478, 3))
    pts[0, 0] = value
    return pts.tolist()


HOSTILE: list[tuple[str, str]] = [
    # numbers a 64-bit (or any) integer cannot hold, and 5,000 digits
    ('{"type": "ping", "id": ' + "9" * 5000 + "}", "invalid_json"),
    ('{"type": "ping", "id": 123456789012345678901234567890}', "invalid_event"),
    (
        '{"type": "response.audio.played", "response_id": "resp_1", "played_ms": 1e999}',
        "invalid_event",
    ),
    (
        '{"type": "response.audio.played", "response_id": "r", "played_ms": 18446744073709551616}',
        "invalid_event",
    ),
    (
        json.dumps({"type": "face.landmarks", "t_ms": 2**70, "landmarks": landmarks()}),
        "invalid_event",
    ),
    # nesting deeper than any real event
    ("[" * 30_000 + "]" * 30_000, "invalid_json"),
    ('{"type": "session.update", "session": ' + '{"a": ' * 5000 + "1" + "}" * 5001, "invalid_json"),
    # lone UTF-16 surrogates in any string
    ('{"type": "ping", "id": "\\ud800"}', "invalid_json"),
    ('{"type": "input_text", "text": "hi \\udfff there"}', "invalid_json"),
    ('{"type": "\\ud800"}', "invalid_json"),
    ('{"type": "session.update", "session": {"voice": "\\udc00"}}', "invalid_json"),
    # non-standard constants
    ('{"type": "session.update", "session": {"temperature": NaN}}', "invalid_json"),
    ('{"type": "session.update", "session": {"temperature": 1e400}}', "invalid_event"),
    # finite but absurd landmarks: their squares overflowed to NaN emotion scores
    (
        json.dumps({"type": "face.landmarks", "t_ms": 1, "landmarks": landmarks(1e308)}),
        "invalid_event",
    ),
    (
        json.dumps(
            {
                "type": "face.landmarks",
                "t_ms": 2,
                "landmarks": landmarks(),
                "blendshapes": {"mouthSmileLeft": 1e300},
            }
        ),
        "invalid_event",
    ),
]


async def test_hostile_text_frames_get_errors_and_the_session_keeps_working(
    server_factory, llm: FakeOpenAI
):
    server = server_factory(llm, ws_max_messages_per_s=10_000, ws_max_text_bytes=200_000)
    ws = await open_ws(server, persona="emma", token="mallory")
    await ws.wait_for("session.created")
    for n, (raw, code) in enumerate(HOSTILE):
        await expect_error_then_pong(ws, raw, code, n)
    llm.queue_reply("Still here.")
    _, done = await text_turn(ws, "hello?")
    assert done["status"] == "completed" and done["text"] == "Still here."
    await ws.conn.close()


async def test_wrong_types_are_rejected_not_coerced(server_factory, llm: FakeOpenAI):
    """Item 7: the docs say wrong types are rejected; "10" is not 10."""
    server = server_factory(llm, ws_max_messages_per_s=10_000)
    ws = await open_ws(server, persona="emma", token="strict")
    await ws.wait_for("session.created")
    wrong = [
        {"type": "session.update", "session": {"max_tokens": "10"}},
        {"type": "session.update", "session": {"temperature": "0.5"}},
        {"type": "session.update", "session": {"max_tokens": 10.0}},
        {"type": "session.update", "session": {"turn_detection": {"silence_ms": "500"}}},
        {"type": "response.audio.played", "response_id": "resp_1", "played_ms": "100"},
        {"type": "input_image", "source": "screen", "t_ms": "1", "jpeg_b64": "QUJD"},
        {"type": "ping", "id": 1.5},
        {"type": "ping", "id": True},
    ]
    for n, ev in enumerate(wrong):
        await expect_error_then_pong(ws, json.dumps(ev), "invalid_event", n)
    await ws.send({"type": "session.update", "session": {"max_tokens": 10, "temperature": 0.5}})
    upd = await ws.wait_for("session.updated")
    assert upd["session"]["max_tokens"] == 10 and upd["session"]["temperature"] == 0.5


async def test_everything_sent_is_strict_json(server_factory, llm: FakeOpenAI):
    """Reads the raw frames (not through the harness's lenient json.loads)."""
    server = server_factory(llm, ws_max_messages_per_s=10_000)
    ws = await open_ws(server, persona="emma", token="strict-out")
    frames: list[str] = []
    for raw, _ in HOSTILE:
        await ws.send_raw(raw)
    await ws.send({"type": "ping", "id": "end"})
    while True:
        msg = await ws.conn.recv()
        assert isinstance(msg, str)
        frames.append(msg)
        if strict_json(msg).get("id") == "end":
            break
    events = [strict_json(f) for f in frames]
    assert sum(e["type"] == "error" for e in events) == len(HOSTILE)
