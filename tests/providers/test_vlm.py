"""VisionClient against the loopback fake OpenAI server (real openai SDK, real HTTP)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import cv2
import numpy as np
import pytest

from server.providers.vlm import (
    ScreenAnalysis,
    VisionClient,
    VisionError,
    image_data_url,
    parse_screen_analysis,
    strict_json_schema,
)
from tests.fakes.openai_server import FakeOpenAI

GOOD_ANALYSIS = {
    "current_screen": "A chat app with a message box and a Send button.",
    "available_actions": [
        {
            "type": "click",
            "element": "Send button",
            "coordinates": {"x": 610, "y": 442},
            "confidence": 0.92,
        },
        {
            "type": "type",
            "element": "message box",
            "coordinates": {"x": 300.6, "y": 440},
            "confidence": 1.3,
        },
    ],
    "recommended_action": {
        "type": "click",
        "target": "Send button",
        "reasoning": "The draft looks finished.",
    },
}


def screenshot_jpeg() -> bytes:
    img = np.full((180, 320, 3), 235, np.uint8)
    cv2.rectangle(img, (20, 20), (200, 120), (40, 90, 200), -1)
    cv2.putText(img, "Send", (230, 160), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


@pytest.fixture
async def client(fake_openai: FakeOpenAI) -> AsyncIterator[VisionClient]:
    async with VisionClient(fake_openai.base_url, "test-key", "fake-vl", timeout_s=5) as c:
        yield c


def image_url_of(body: dict[str, Any]) -> str:
    user = next(m for m in body["messages"] if m["role"] == "user")
    return next(p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url")


def text_of(body: dict[str, Any], role: str) -> str:
    msg = next(m for m in body["messages"] if m["role"] == role)
    content = msg["content"]
    if isinstance(content, str):
        return content
    return " ".join(p["text"] for p in content if p["type"] == "text")


async def test_description_sends_image_as_base64_data_url(
    fake_openai: FakeOpenAI, client: VisionClient
) -> None:
    jpeg = screenshot_jpeg()
    fake_openai.queue_reply(text="  A code editor with a Python file open.  ")
    text = await client.get_visual_description(jpeg, prompt="What app is this?")
    assert text == "A code editor with a Python file open."

    (req,) = fake_openai.chat_requests()
    body = req["body"]
    assert req["path"] == "/v1/chat/completions"
    assert body["model"] == "fake-vl" and body["max_tokens"] == 300
    url = image_url_of(body)
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :], validate=True) == jpeg
    assert text_of(body, "user") == "What app is this?"
    assert client.usage.calls == 1 and client.usage.completion_tokens > 0
    assert client.last_latency_ms is not None and client.last_latency_ms >= 0


async def test_description_default_prompt_and_empty_answer(
    fake_openai: FakeOpenAI, client: VisionClient
) -> None:
    fake_openai.queue_reply(text="")
    with pytest.raises(VisionError, match="empty description"):
        await client.get_visual_description(screenshot_jpeg())
    assert "Describe what is on this screen" in text_of(
        fake_openai.chat_requests()[0]["body"], "user"
    )


async def test_analyze_screen_parses_scripted_json(
    fake_openai: FakeOpenAI, client: VisionClient
) -> None:
    fake_openai.queue_reply(text=json.dumps(GOOD_ANALYSIS))
    result = await client.analyze_screen(screenshot_jpeg(), context="user wants to reply")
    assert isinstance(result, ScreenAnalysis)
    assert result.current_screen.startswith("A chat app")
    send, box = result.available_actions
    assert (send.type, send.element, send.coordinates.x, send.coordinates.y) == (
        "click",
        "Send button",
        610,
        442,
    )
    assert send.confidence == pytest.approx(0.92)
    assert box.coordinates.x == 301 and box.confidence == 1.0  # rounded and clamped
    assert result.recommended_action.target == "Send button"

    body = fake_openai.chat_requests()[0]["body"]
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"] == strict_json_schema(ScreenAnalysis)
    assert "user wants to reply" in text_of(body, "user")
    assert "JSON" in text_of(body, "system")
    assert image_url_of(body).startswith("data:image/jpeg;base64,")


async def test_analyze_screen_schema_is_satisfiable(
    fake_openai: FakeOpenAI, client: VisionClient
) -> None:
    """Unscripted, the fake answers with a minimal instance of the schema we sent."""
    result = await client.analyze_screen(screenshot_jpeg(), None)
    assert result.available_actions == []
    assert isinstance(result.recommended_action.reasoning, str)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ('{"current_screen": "half an answer", "available_', "not valid JSON"),
        ("Sure! The screen shows a browser.", "not valid JSON"),
        ("", "empty answer"),
        (json.dumps({**GOOD_ANALYSIS, "recommended_action": None}), "recommended_action"),
        (json.dumps({k: v for k, v in GOOD_ANALYSIS.items() if k != "current_screen"}), "current_"),
        (json.dumps([GOOD_ANALYSIS]), "does not match the schema"),
    ],
    ids=["truncated", "prose", "empty", "null-field", "missing-field", "wrong-type"],
)
async def test_bad_structured_output_raises_vision_error(
    fake_openai: FakeOpenAI, client: VisionClient, reply: str, message: str
) -> None:
    fake_openai.queue_reply(text=reply)
    with pytest.raises(VisionError, match=message):
        await client.analyze_screen(screenshot_jpeg(), None)


async def test_fenced_json_from_lax_servers_is_accepted() -> None:
    fenced = "```json\n" + json.dumps(GOOD_ANALYSIS) + "\n```"
    assert parse_screen_analysis(fenced).recommended_action.type == "click"


async def test_cut_off_answer_is_reported(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(text=" ".join(["word"] * 50))
    async with VisionClient(fake_openai.base_url, "k", "m", analysis_max_tokens=5) as c:
        with pytest.raises(VisionError, match="cut off at 5 tokens"):
            await c.analyze_screen(screenshot_jpeg(), None)


async def test_server_errors_are_retried_then_succeed(
    fake_openai: FakeOpenAI, client: VisionClient
) -> None:
    fake_openai.queue_reply(fail_status=503)
    fake_openai.queue_reply(fail_status=500)
    fake_openai.queue_reply(text="A terminal window.")
    assert await client.get_visual_description(screenshot_jpeg()) == "A terminal window."
    assert [r["status"] for r in fake_openai.chat_requests()] == [503, 500, 200]


async def test_persistent_server_error_maps_to_vision_error(
    fake_openai: FakeOpenAI, client: VisionClient
) -> None:
    for _ in range(4):
        fake_openai.queue_reply(fail_status=502)
    with pytest.raises(VisionError, match="HTTP 502") as info:
        await client.get_visual_description(screenshot_jpeg())
    assert info.value.status == 502
    assert len(fake_openai.chat_requests()) == 4  # first try + 3 retries
    assert client.usage.errors == 1


async def test_client_error_is_not_retried(fake_openai: FakeOpenAI, client: VisionClient) -> None:
    fake_openai.queue_reply(fail_status=400)
    with pytest.raises(VisionError, match="HTTP 400") as info:
        await client.get_visual_description(screenshot_jpeg())
    assert info.value.status == 400
    assert len(fake_openai.chat_requests()) == 1


async def test_timeout_maps_to_vision_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(text="late", ttft_ms=2000)
    async with VisionClient(fake_openai.base_url, "k", "m", timeout_s=0.3, max_retries=0) as c:
        with pytest.raises(VisionError, match=r"timed out after 0\.3 s"):
            await c.get_visual_description(screenshot_jpeg())


async def test_unreachable_endpoint_maps_to_vision_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    async with VisionClient(url, "k", "m", timeout_s=2, max_retries=0) as c:
        with pytest.raises(VisionError, match="cannot reach vision endpoint"):
            await c.get_visual_description(screenshot_jpeg())


async def test_non_image_bytes_fail_before_any_request(
    fake_openai: FakeOpenAI, client: VisionClient
) -> None:
    with pytest.raises(VisionError, match="not JPEG, PNG or WebP"):
        await client.get_visual_description(b"GIF89a not supported")
    with pytest.raises(VisionError, match="no image data"):
        await client.analyze_screen(b"", None)
    assert fake_openai.chat_requests() == []


def test_data_url_sniffs_png() -> None:
    ok, png = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    assert ok
    assert image_data_url(png.tobytes()).startswith("data:image/png;base64,")


def test_strict_schema_is_closed_and_self_contained() -> None:
    schema = strict_json_schema(ScreenAnalysis)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node["additionalProperties"] is False
                assert sorted(node["required"]) == sorted(node["properties"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    action = schema["properties"]["available_actions"]["items"]
    assert set(action["properties"]) == {"type", "element", "coordinates", "confidence"}
    assert set(action["properties"]["coordinates"]["properties"]) == {"x", "y"}


async def test_faults_are_named_accurately(fake_openai: FakeOpenAI):
    """Issue 11, item 9: "cannot reach" only when the endpoint could not be reached."""
    image = screenshot_jpeg()
    async with VisionClient(
        fake_openai.base_url, "k", "fake-vl", timeout_s=0.5, max_retries=0
    ) as c:
        for fault, words in [
            ("garbage", "invalid response"),
            ("break", "broke the connection"),
            ("hang_headers", "timed out after 0.5 s"),
        ]:
            fake_openai.queue_reply("a screen", fault=fault)
            with pytest.raises(VisionError) as err:
                await c.get_visual_description(image)
            assert words in str(err.value) and "cannot reach" not in str(err.value)
        fake_openai.queue_reply("A code editor.")
        assert await c.get_visual_description(image) == "A code editor."  # recovered
    async with VisionClient("http://127.0.0.1:9/v1", "k", "m", max_retries=0) as down:
        with pytest.raises(VisionError, match="cannot reach"):
            await down.get_visual_description(image)
