"""Desktop mode (TASK_DESKTOP_EXECUTE): the server performs the approved action on its own
display. A virtual X display (Xvfb) shows a real Chromium window with an ordering page; the
server grabs that screen (mss), the fake VLM says where to click (in the grab's pixels), the
user says yes over the WebSocket, and the server's mouse (pynput) clicks the real button; the
grab after it is verified like a client's screenshot."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from server.store.base import CONSENT_ITEMS
from tests.e2e.browser.conftest import CHROMIUM_ARGS
from tests.fakes.openai_server import FakeOpenAI
from tests.pipelines.test_vision_pipeline import virtual_display
from tests.server_harness import ServerThread, open_ws
from tests.tasks.screens import step

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PAGE = """<!doctype html><html><head><title>menu</title></head>
<body style="margin:0;background:#fff">
<button id="b" style="position:absolute;left:100px;top:150px;width:240px;height:100px"
 onclick="document.body.style.background='#c00';document.title='item'">Big Mac</button>
</body></html>"""


def near(bgr: tuple[int, ...], want: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(bgr, want, strict=True))


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with virtual_display(monkeypatch) as display:
        yield display


class GrabVLM:
    """Answers task readings in order and keeps the size of each screen it was shown."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers, self.sizes = answers, []

    def __call__(self, body: dict[str, Any]) -> str:
        fmt = (body.get("response_format") or {}).get("json_schema") or {}
        if fmt.get("name") != "task_step_analysis":
            return "All right."
        img = cv2.imdecode(
            np.frombuffer(FakeOpenAI.request_images(body)[0], np.uint8), cv2.IMREAD_COLOR
        )
        self.sizes.append((img.shape[1], img.shape[0], tuple(int(v) for v in img[400, 1000])))
        return json.dumps(self.answers[min(len(self.sizes) - 1, len(self.answers) - 1)])


async def desktop_status(http: httpx.AsyncClient) -> dict[str, Any]:
    """/health/details once the start-up probe of desktop mode has answered."""
    for _ in range(200):
        details = (await http.get("/health/details")).json()
        if details["modules"].get("desktop") != "loading":
            return details
        await asyncio.sleep(0.05)
    raise AssertionError(f"the desktop probe never answered: {details}")


async def test_the_server_clicks_the_approved_action_on_its_own_display(
    xvfb: str,
    chromium: Path,
    server_factory: Callable[..., ServerThread],
    llm: FakeOpenAI,
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(chromium),
            headless=False,  # a real window on the virtual display
            args=[a for a in CHROMIUM_ARGS if a != "--headless"]
            + ["--window-position=0,0", "--window-size=1280,720"],
            env=dict(os.environ),
            timeout=60_000,
        )
        page = await (await browser.new_context(no_viewport=True)).new_page()
        await page.set_content(PAGE)
        # the button's centre in screen pixels: the page starts below the browser's toolbar
        top = await page.evaluate("() => window.outerHeight - window.innerHeight")
        x, y = 100 + 120, top + 150 + 50
        vlm = GrabVLM(
            [
                step("Menu", "Big Mac", (x, y), "Item", ["Big Mac"]),
                step("Item", "", (0, 0), "", ["Big Mac"], complete=True),
            ]
        )
        llm.set_default(vlm)
        srv = server_factory(llm, task_desktop_execute=True, task_desktop_settle_ms=5000)
        http = httpx.AsyncClient(base_url=srv.url, headers={"Authorization": "Bearer desk"})
        # /health/details says desktop mode can act here (pynput's X11 backend, the display)
        details = await desktop_status(http)
        assert details["modules"]["desktop"] == "ready", details
        assert details["details"]["desktop"].startswith("pynput xorg, pointer at (")
        assert details["details"]["desktop"].endswith("screen 1280x720")
        items = dict.fromkeys(CONSENT_ITEMS, True)
        assert (await http.post("/v1/users/consent", json={"items": items})).status_code == 200
        ws = await open_ws(srv, persona="emma", token="desk")
        await ws.wait_for("session.created")

        # no screenshot and no frames: the server reads its own screen
        body = {"app_name": "Burger", "task": "Order a Big Mac", "consent_confirmed": True}
        r = await http.post("/v1/tasks", json=body)
        assert r.status_code == 201, r.text
        task = r.json()
        preview = task["next_action_preview"]
        assert preview["coordinates"] == {"x": x, "y": y}
        assert vlm.sizes[0][:2] == (1280, 720) and near(vlm.sizes[0][2], (255, 255, 255))

        # the user says yes: the server clicks on its display, grabs it and verifies
        await ws.send(
            {"type": "task.confirm", "task_id": task["task_id"], "action_id": preview["action_id"]}
        )
        await ws.wait_for("task.action_execute", action_id=preview["action_id"])
        res = await ws.wait_for("task.action_result", action_id=preview["action_id"], timeout=20)
        assert res["status"] == "success" and res["diff"]["changed"] is True
        assert await page.title() == "item"  # the real button was clicked
        assert near(vlm.sizes[1][2], (0, 0, 204))  # the grab after it shows the red page (BGR)
        done = await ws.wait_for("task.done", task_id=task["task_id"])
        assert done["status"] == "completed"
        await ws.conn.close()
        await http.aclose()
        await browser.close()


async def test_without_a_display_the_task_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch,
    server_factory: Callable[..., ServerThread],
    llm: FakeOpenAI,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    srv = server_factory(llm, task_desktop_execute=True)
    async with httpx.AsyncClient(
        base_url=srv.url, headers={"Authorization": "Bearer nodisplay"}
    ) as http:
        items = dict.fromkeys(CONSENT_ITEMS, True)
        await http.post("/v1/users/consent", json={"items": items})
        body = {"app_name": "Burger", "task": "Order", "consent_confirmed": True}
        r = await http.post("/v1/tasks", json=body)
        assert r.status_code == 503
        assert r.json()["detail"].startswith("No screen to read: screen capture failed")
        # and /health says so before anyone tries: configured, not working
        details = await desktop_status(http)
        assert details["modules"]["desktop"] == "error"
        assert "no display to capture" in details["details"]["desktop"]
        assert (await http.get("/health")).status_code == 503
        assert "DISPLAY" in r.json()["detail"]
        assert (await http.get("/v1/tasks")).json()["tasks"] == []  # nothing left running
