"""Test helpers for screen tasks: the fake VLM's per-screen answers (a marker square at the
top left of each screenshot says which screen it is) and synthetic screens drawn with
OpenCV for tests that need no browser."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import cv2
import numpy as np

from server.tasks.voice import PHRASE_MARKER
from tests.fakes.openai_server import FakeOpenAI, Reply

Rgb = tuple[int, int, int]
PERSONA_LINE = "(in my own words) shall I press"


def step(
    screen: str,
    target: str,
    xy: tuple[int, int],
    expected: str,
    visible: list[str],
    *,
    last: bool = False,
    payment: bool = False,
    matches: bool = True,
    complete: bool = False,
) -> dict[str, Any]:
    """One StepAnalysis answer, as a VLM would give it for that screen."""
    coords = {"x": xy[0], "y": xy[1]}
    return {
        "current_screen": screen,
        "available_actions": [
            {"type": "click", "element": target, "coordinates": coords, "confidence": 0.93}
        ],
        "recommended_action": {
            "type": "none" if complete else "click",
            "target": target,
            "reasoning": f"'{target}' moves the task forward",
            "coordinates": coords,
            "text": "",
            "description": f"press {target}",
        },
        "visible_text": visible,
        "is_payment_screen": payment,
        "matches_expected_screen": matches,
        "expected_next_screen": expected,
        "is_last_step": last,
        "task_complete": complete,
        "remaining_plan": ["빅맥 세트 고르기", "옵션 고르기", "장바구니", "주문서"],
    }


def screen_of(image: bytes, markers: dict[Rgb, str]) -> str:
    bgr = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = (int(v) for v in bgr[20, 20])
    for rgb, name in markers.items():
        if sum(abs(a - c) for a, c in zip(rgb, (r, g, b), strict=True)) < 60:
            return name
    return "unknown"


class ScreenVLM:
    """The fake VLM's task answers per screen: the n-th visit of a screen gets the n-th
    answer (the last repeats); a str answer is sent as is (e.g. malformed JSON), a Reply as
    scripted. Screen descriptions (no task schema) get a plain sentence."""

    def __init__(self, markers: dict[Rgb, str], answers: dict[str, list[Any]]) -> None:
        self.markers = markers
        self.answers = answers
        self.visits: Counter[str] = Counter()

    def __call__(self, body: dict[str, Any]) -> str | Reply:
        fmt = (body.get("response_format") or {}).get("json_schema") or {}
        if fmt.get("name") != "task_step_analysis":
            last = str(body["messages"][-1].get("content"))
            if PHRASE_MARKER in last:  # the persona phrasing a preview in its own words
                target = last.split("'")[1]
                return f"{PERSONA_LINE} {target}?"
            return "An ordering app."
        screen = screen_of(FakeOpenAI.request_images(body)[0], self.markers)
        answers = self.answers.get(screen)
        if not answers:
            return Reply(fail_status=400)
        n = self.visits[screen]
        self.visits[screen] += 1
        a = answers[min(n, len(answers) - 1)]
        return a if isinstance(a, str | Reply) else json.dumps(a, ensure_ascii=False)


def drawn_screen(marker: Rgb, title: str, fmt: str = ".jpg") -> bytes:
    """A 640x400 screen with a marker square (RGB) and a title, encoded."""
    img = np.full((400, 640, 3), 250, np.uint8)
    cv2.rectangle(img, (0, 0), (40, 40), marker[::-1], -1)
    cv2.putText(img, title, (60, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (20, 20, 20), 3)
    ok, data = cv2.imencode(fmt, img)
    assert ok
    return data.tobytes()
