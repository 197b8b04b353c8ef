"""The planner against the fake VLM (a real HTTP server): the seed's JSON is validated, a
malformed answer is asked for once more, then reported."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import cv2
import numpy as np
import pytest

from server.providers.vlm import VisionClient
from server.tasks.planner import PlanFailed, Planner
from tests.fakes.openai_server import FakeOpenAI

GOOD = {
    "current_screen": "메인 화면",
    "available_actions": [
        {
            "type": "click",
            "element": "주문하기 버튼",
            "coordinates": {"x": 100, "y": 200},
            "confidence": 0.95,
        }
    ],
    "recommended_action": {
        "type": "click",
        "target": "주문하기 버튼",
        "reasoning": "주문을 시작하기 위해 주문하기 버튼 클릭 필요",
        "coordinates": {"x": 100.4, "y": 200},
        "text": "",
        "description": "주문 시작",
    },
    "visible_text": ["주문하기"],
    "is_payment_screen": False,
    "matches_expected_screen": True,
    "expected_next_screen": "메뉴 목록",
    "is_last_step": False,
    "task_complete": False,
    "remaining_plan": ["메뉴", "장바구니"],
}


def png() -> bytes:
    ok, data = cv2.imencode(".png", np.full((90, 160, 3), 200, np.uint8))
    assert ok
    return data.tobytes()


@pytest.fixture
async def planner(fake_openai: FakeOpenAI) -> AsyncIterator[Planner]:
    async with VisionClient(fake_openai.base_url, "k", "fake-vlm", max_retries=0) as vision:
        yield Planner(vision)


async def analyze(p: Planner):  # type: ignore[no-untyped-def]
    return await p.analyze(
        png(),
        app_name="McDonald's",
        task="빅맥 세트 1개",
        step=2,
        previous="메뉴 열기",
        expected="메뉴 목록",
    )


async def test_valid_answer(planner: Planner, fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(json.dumps(GOOD, ensure_ascii=False))
    plan = await analyze(planner)
    assert plan.tries == 1 and plan.vlm_ms > 0
    assert plan.analysis.recommended_action.coordinates.x == 100  # rounded
    body = fake_openai.chat_requests()[0]["body"]
    assert body["response_format"]["json_schema"]["name"] == "task_step_analysis"
    question = body["messages"][1]["content"][0]["text"]
    assert "Step number: 2" in question and "메뉴 목록" in question and "빅맥" in question
    assert fake_openai.chat_requests()[0]["images"][0].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    "bad",
    [
        "not json at all",
        json.dumps({**GOOD, "available_actions": "none"}),
        json.dumps({k: v for k, v in GOOD.items() if k != "recommended_action"}),
        json.dumps({**GOOD, "recommended_action": {**GOOD["recommended_action"], "type": "pay"}}),
    ],
)
async def test_malformed_answer_is_retried_once(
    planner: Planner, fake_openai: FakeOpenAI, bad: str
) -> None:
    fake_openai.queue_reply(bad)
    fake_openai.queue_reply(json.dumps(GOOD))
    plan = await analyze(planner)
    assert plan.tries == 2 and len(fake_openai.chat_requests()) == 2
    assert plan.analysis.current_screen == "메인 화면"


async def test_malformed_twice_is_reported(planner: Planner, fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply("{}")
    fake_openai.queue_reply('{"current_screen": 3}')
    fake_openai.queue_reply(json.dumps(GOOD))  # never asked for
    with pytest.raises(PlanFailed) as e:
        await analyze(planner)
    assert e.value.reason == "vlm_malformed" and "does not match the schema" in e.value.message
    assert len(fake_openai.chat_requests()) == 2 and fake_openai.pending_replies == 1


async def test_endpoint_failure_is_reported_without_a_retry(
    planner: Planner, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue_reply(fail_status=500)
    with pytest.raises(PlanFailed) as e:
        await analyze(planner)
    assert e.value.reason == "vlm_error" and "HTTP 500" in e.value.message
