"""WebSocket fuzz (issue 11, "Done when"): over 10,000 malformed messages, across every
client event type and every binary frame kind, seeded and reproducible, on one real socket.

Asserts: the socket is never closed; exactly one `error` event per bad message (and never
`internal_error`, which would be a bug); every text frame the server sends is strict JSON
(no NaN/Infinity, valid UTF-8); and a normal turn works afterwards on the same socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import struct
import time
from collections import Counter
from typing import Any

import numpy as np

from server.hub.protocol import FACE_FRAME_HEADER, KNOWN_TYPES, N_BLENDSHAPES
from tests.e2e.test_perception_face import FACE_MODEL
from tests.e2e.test_ws_robust import NOT_JSON, strict_json
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import open_ws, text_turn

SEED = 20261206
N_TEXT = 8_000
N_BINARY = 2_500
BATCH = 400

LANDMARKS = np.round(np.random.default_rng(SEED).uniform(0.3, 0.7, (468, 3)), 4).tolist()
# A valid instance of every client event (never sent as is: each is broken first).
VALID: dict[str, dict[str, Any]] = {
    "session.update": {
        "type": "session.update",
        "session": {"temperature": 0.5, "max_tokens": 100, "turn_detection": {"silence_ms": 500}},
    },
    "input_text": {"type": "input_text", "text": "hello"},
    "input_audio.commit": {"type": "input_audio.commit"},
    "input_audio.clear": {"type": "input_audio.clear"},
    "face.landmarks": {"type": "face.landmarks", "t_ms": 1, "landmarks": LANDMARKS},
    "input_image": {"type": "input_image", "source": "screen", "t_ms": 1, "jpeg_b64": "QUJD"},
    "response.cancel": {"type": "response.cancel"},
    "response.audio.played": {
        "type": "response.audio.played",
        "response_id": "resp_1",
        "played_ms": 10,
    },
    "session.pause": {"type": "session.pause"},
    "session.resume": {"type": "session.resume"},
    "session.end": {"type": "session.end"},
    "task.confirm": {"type": "task.confirm", "task_id": "t1", "action_id": "a1"},
    "task.executed": {"type": "task.executed", "task_id": "t1", "action_id": "a1"},
    "task.control": {"type": "task.control", "task_id": "t1", "command": "pause"},
    "approval.response": {"type": "approval.response", "call_id": "c1", "decision": "approve"},
    "ping": {"type": "ping", "id": 1},
}
# Text no RFC 8259 parser accepts as a value (see test_ws_robust.NOT_JSON), and more.
RAW = [*NOT_JSON, "01", "+1", ".5", "tru", "'single'", '"unterminated', "\x00"]
PLACEHOLDER = "__RAW_VALUE__"
# A PNG header claiming 100,000 x 100,000 pixels (10 gigapixels).
HUGE_PNG = (
    b"\x89PNG\r\n\x1a\n"
    + struct.pack(">I", 13)
    + b"IHDR"
    + struct.pack(">II", 100_000, 100_000)
    + b"\x08\x02\x00\x00\x00\x00\x00\x00\x00"
)


def broken_value(valid: Any, path: tuple[str, ...], rng: random.Random) -> Any:
    """A value of the wrong type (no coercion: "10" is not 10) or far out of range for a
    field whose valid value is ``valid``."""
    if isinstance(valid, list | dict):
        return rng.choice(["x", 1, True])
    if isinstance(valid, bool):
        return rng.choice(["true", [], {}, 1.5])
    if isinstance(valid, int | float):
        choices: list[Any] = [[valid], {"v": valid}, 2**64, -(2**64), True]
        if path != ("id",):  # a ping id may be a string
            choices.append(str(valid))
        return rng.choice(choices)
    return rng.choice([[valid], {"s": valid}, 12345, 1.5, True])


def fields(event: dict[str, Any]) -> list[tuple[str, ...]]:
    """Paths of the fields that can be broken (top level and session.*)."""
    out: list[tuple[str, ...]] = [(k,) for k in event if k != "type"]
    if isinstance(event.get("session"), dict):
        out += [("session", k) for k in event["session"]]
    return out


def set_path(event: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = event
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def del_path(event: dict[str, Any], path: tuple[str, ...]) -> None:
    node = event
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


REQUIRED = {
    "input_text": ["text"],
    "face.landmarks": ["t_ms", "landmarks"],
    "input_image": ["source", "jpeg_b64"],
    "response.audio.played": ["response_id", "played_ms"],
    "session.update": ["session"],
    "task.confirm": ["task_id", "action_id"],
    "task.executed": ["task_id", "action_id"],
    "task.control": ["task_id", "command"],
}


def bad_text(rng: random.Random, kind: str) -> tuple[str, str]:
    """One malformed text frame for event type ``kind``: (mutation name, frame)."""
    ev = json.loads(json.dumps(VALID[kind]))
    paths = fields(ev)
    mutation = rng.choice(
        ["extra_field", "wrong_type", "raw_value", "truncated", "trailing", "bad_type", "missing"]
    )
    if mutation == "missing" and kind not in REQUIRED:
        mutation = "extra_field"
    if mutation in ("wrong_type", "raw_value") and not paths:
        mutation = "extra_field" if mutation == "wrong_type" else "raw_extra"
    if mutation == "extra_field":
        ev[rng.choice(["extra", "Type", "session_id", "\u00e9", "x" * 50])] = rng.choice(
            [1, "x", None, [], {}]
        )
    elif mutation == "wrong_type":
        path = rng.choice(paths)
        node: Any = ev
        for key in path:
            node = node[key]
        set_path(ev, path, broken_value(node, path, rng))
    elif mutation == "raw_value":
        set_path(ev, rng.choice(paths), PLACEHOLDER)
    elif mutation == "raw_extra":
        ev["x"] = PLACEHOLDER
    elif mutation == "bad_type":
        ev["type"] = rng.choice(
            [kind.upper(), kind + " ", "", 7, None, [kind], kind + "\u0000", "ping.pong"]
        )
    elif mutation == "missing":
        del_path(ev, (rng.choice(REQUIRED[kind]),))
    text = json.dumps(ev, ensure_ascii=rng.random() < 0.5)
    if PLACEHOLDER in text:
        text = text.replace(f'"{PLACEHOLDER}"', rng.choice(RAW))
    if mutation == "truncated":
        text = text[: rng.randrange(0, len(text) - 1)]
    elif mutation == "trailing":
        text += rng.choice(["x", "}", ",", " {}", "]", "nul"])
    return mutation, text


def bad_binary(rng: random.Random) -> tuple[str, bytes]:
    """One malformed binary frame: (kind name, frame)."""
    kind = rng.choice(["mic", "screen", "camera", "face", "unknown", "empty"])
    if kind == "mic":  # odd length, or longer than 100 ms, or empty
        n = rng.choice([0, 1, 3, 99, 3201, 3202, 6400, 20_001])
        return kind, b"\x01" + rng.randbytes(n)
    if kind in ("screen", "camera"):  # refused from the header: not an image, or too large
        body = rng.choice(
            [
                b"",
                b"GIF89a" + rng.randbytes(rng.choice([0, 5, 100, 2000])),
                b"\x00" + rng.randbytes(rng.choice([0, 5, 100])),
                HUGE_PNG,
            ]
        )
        return kind, (b"\x02" if kind == "screen" else b"\x03") + body
    if kind == "face":
        return kind, bad_face_frame(rng)
    if kind == "unknown":
        return kind, bytes([rng.choice([0x00, *range(0x05, 0x100)])]) + rng.randbytes(
            rng.randrange(0, 64)
        )
    return kind, b""


def bad_face_frame(rng: random.Random) -> bytes:
    dims, n = rng.choice([(2, 468), (3, 478), (3, 468)])
    points = np.random.default_rng(rng.randrange(2**32)).uniform(0.3, 0.7, (n, dims))
    defect = rng.choice(["header", "length", "nan", "inf", "huge", "blend_nan", "blend_huge"])
    bs = None
    if defect in ("nan", "inf", "huge"):
        points[rng.randrange(n), rng.randrange(dims)] = {
            "nan": np.nan,
            "inf": np.inf,
            "huge": 3e38,
        }[defect]
    if defect.startswith("blend"):
        bs = np.full(N_BLENDSHAPES, 0.1, "<f4")
        bs[rng.randrange(N_BLENDSHAPES)] = np.nan if defect == "blend_nan" else 1e30
    frame = FACE_FRAME_HEADER.pack(0x04, dims, n, rng.randrange(2**32))
    frame += points.astype("<f4").tobytes() + (bs.tobytes() if bs is not None else b"")
    if defect == "header":
        wrong = rng.choice([(1, n), (4, n), (dims, 467), (dims, 0), (255, 65535)])
        frame = FACE_FRAME_HEADER.pack(0x04, *wrong, 5) + frame[FACE_FRAME_HEADER.size :]
    elif defect == "length":
        frame = frame[: rng.randrange(0, len(frame) - 1)] or frame + b"\x00"
        if len(frame) < FACE_FRAME_HEADER.size:
            frame = frame + struct.pack("<I", 1)
    return frame


async def test_ten_thousand_malformed_messages_each_get_an_error_and_the_socket_lives(
    server_factory, llm: FakeOpenAI
):
    assert set(VALID) == set(KNOWN_TYPES), "a new client event needs a valid example here"
    server = server_factory(
        llm,
        face_model_path=FACE_MODEL,
        ws_max_messages_per_s=1_000_000,
        ws_user_max_messages_per_s=1_000_000,
        ws_outbound_queue=4096,
    )
    rng = random.Random(SEED)
    messages: list[tuple[str, str | bytes]] = []
    for _ in range(N_TEXT):
        kind = rng.choice(sorted(VALID))
        mutation, text = bad_text(rng, kind)
        messages.append((f"{kind}/{mutation}", text))
    for _ in range(N_BINARY):
        kind, frame = bad_binary(rng)
        messages.append((f"binary/{kind}", frame))
    rng.shuffle(messages)

    ws = await open_ws(server, persona="emma", token="fuzz")
    await ws.wait_for("session.created")
    received: list[str] = []
    barrier: dict[str, asyncio.Event] = {}

    async def reader() -> None:
        async for frame in ws.conn:
            assert isinstance(frame, str), "the server sent binary without a reply"
            received.append(frame)
            ev = strict_json(frame)  # raises on NaN/Infinity or a lone surrogate
            if ev.get("type") == "pong" and ev.get("id") in barrier:
                barrier[ev["id"]].set()

    reading = asyncio.create_task(reader())
    codes: Counter[str] = Counter()
    t0 = time.monotonic()
    try:
        for start in range(0, len(messages), BATCH):
            batch = messages[start : start + BATCH]
            mark = len(received)
            for _, raw in batch:
                await ws.conn.send(raw)
            bid = f"barrier-{start}"
            barrier[bid] = asyncio.Event()
            await ws.conn.send(json.dumps({"type": "ping", "id": bid}))
            await asyncio.wait_for(barrier[bid].wait(), 60)
            events = [strict_json(f) for f in received[mark:]]
            errors = [e for e in events if e["type"] == "error"]
            others = [e["type"] for e in events if e["type"] not in ("error", "pong")]
            assert not others, others[:5]  # no turn started, nothing else happened
            assert len(errors) == len(batch), (
                f"batch {start}: {len(batch)} bad messages, {len(errors)} errors"
            )
            for (name, raw), err in zip(batch, errors, strict=True):
                assert err["fatal"] is False and err["message"], (name, err)
                assert err["code"] != "internal_error", (name, repr(raw)[:200], err)
                codes[err["code"]] += 1
        elapsed = time.monotonic() - t0
        # the same socket still works normally
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        llm.queue_reply("Still standing.")
        ws.events.clear()
        _, done = await text_turn(ws, "hello after the storm")
        assert done["status"] == "completed" and done["text"] == "Still standing."
    finally:
        reading.cancel()
    kinds = Counter(name.split("/")[0] for name, _ in messages)
    print(
        f"\nWS fuzz (seed {SEED}): {len(messages)} malformed messages "
        f"({N_TEXT} text across {len(VALID)} event types, {N_BINARY} binary across 0x01-0x04, "
        f"unknown kinds and empty frames) in {elapsed:.1f} s; {sum(codes.values())} error "
        f"events, 0 closes, {len(received)} frames all strict JSON; error codes {dict(codes)}; "
        f"per kind {dict(sorted(kinds.items()))}"
    )
    assert len(messages) >= 10_000
    assert ws.conn.close_code is None  # never closed by the server
