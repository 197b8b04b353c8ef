"""The studio's screen task panel (static/tasks.js) in real Chromium against the real server:
the page shares its screen (Chromium's own fake display capture, 1280x720), the user starts a
task with the four consent items, sees each action previewed with a marker on the screen,
and answers with the panel's buttons (Confirm, Done, Skip, Retry, Take over, Pause, Resume,
Cancel, New task) through a failure, the final confirmation and the stop at a payment screen.
The fake VLM answers the task readings in order (the fake screen is a moving test pattern)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from server.tasks.voice import PHRASE_MARKER
from tests.e2e.browser.conftest import ARTIFACTS, OpenStudio, Studio
from tests.e2e.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread
from tests.tasks.screens import PERSONA_LINE, step

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PAYMENT = ["Order summary", "Total $7.70", "Card number", "Pay $7.70"]


class SequenceVLM:
    """Task readings answered in order; the persona's preview phrasing and any other chat
    get a plain line. Keeps the size of every screen the server sent to the model."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, body: dict[str, Any]) -> str:
        fmt = (body.get("response_format") or {}).get("json_schema") or {}
        if fmt.get("name") != "task_step_analysis":
            last = str(body["messages"][-1].get("content"))
            return f"{PERSONA_LINE} it?" if PHRASE_MARKER in last else "All right."
        image = FakeOpenAI.request_images(body)[0]
        img = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
        self.sizes.append((img.shape[1], img.shape[0]))
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return json.dumps(answer, ensure_ascii=False)


ANSWERS = [
    # task 1: the first click lands on the wrong screen, the retry works
    step("Menu", "Big Mac", (640, 360), "Item", ["Menu"]),
    step("Menu", "Big Mac", (640, 360), "Item", ["Menu"], matches=False),
    step("Item", "Add to cart", (320, 180), "Cart", ["Big Mac"]),
    # the verified step; the next one is the last (final confirmation), asked three times:
    # first, after pause/resume, after skip/resume
    step("Cart", "Continue", (960, 540), "Checkout", ["$7.70"], last=True),
    step("Cart", "Continue", (960, 540), "Checkout", ["$7.70"], last=True),
    step("Cart", "Continue", (960, 540), "Checkout", ["$7.70"], last=True),
    # the screen after it is a payment form (the text rules catch it, the VLM does not flag it)
    step("Checkout", "Pay $7.70", (640, 600), "Paid", PAYMENT),
    # task 2: a failure taken over by hand, then cancelled
    step("Menu", "Big Mac", (640, 360), "Item", ["Menu"]),
    step("Menu", "Big Mac", (640, 360), "Item", ["Menu"], matches=False),
]


@pytest.fixture(scope="module")
def task_server(
    tmp_path_factory: pytest.TempPathFactory, browser_llm: FakeOpenAI
) -> Iterator[ServerThread]:
    settings = make_settings(tmp_path_factory.mktemp("tasks-ui"), browser_llm)
    srv = ServerThread(settings).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def vlm(browser_llm: FakeOpenAI) -> Iterator[SequenceVLM]:
    browser_llm.clear()
    fake = SequenceVLM(ANSWERS)
    browser_llm.set_default(fake)
    yield fake
    browser_llm.set_default(None)


async def press(s: Studio, button: str) -> None:
    await s.page.click(f'#task-buttons [data-task="{button}"]:visible')


async def visible_buttons(s: Studio) -> list[str]:
    return await s.page.eval_on_selector_all(
        "#task-buttons [data-task]:not([hidden])", "els => els.map(e => e.dataset.task)"
    )


async def next_preview(s: Studio, n_results: int, target: str) -> dict[str, Any]:
    """Wait for the preview of `target` once `n_results` action results have arrived."""
    return await s.wait(
        f"s.tasks.results.length >= {n_results} && s.tasks.preview"
        f" && s.tasks.preview.target === {json.dumps(target)} && s.tasks.preview",
        what=f"the preview of {target}",
    )


async def test_a_task_through_the_panel(
    task_server: ServerThread, open_studio: OpenStudio, vlm: SequenceVLM
) -> None:
    s = await open_studio(task_server, "tasker", mic="silence", audio="none")
    page = s.page
    await page.evaluate("() => window.studio.start()")
    await s.wait("s.connected", what="the session")
    await page.evaluate("() => window.studio.startScreen()")
    await s.wait("s.screen.active && s.sent.screenFrames > 0", what="a shared screen frame")

    # the panel asks the four consent items of seed 001 7.2, in the interface language
    await page.click("#task-details > summary")
    await page.wait_for_selector("#task-consent-items input", state="attached")
    items = await page.eval_on_selector_all("#task-consent-items input", "e => e.map(x => x.value)")
    assert items == ["automation_scope", "legal_risk", "research_only", "data_storage"]
    assert "payment" in (await page.inner_text("#task-consent-items")).lower()
    await page.fill("#task-app", "Burger")
    await page.fill("#task-text", "Order a Big Mac meal")
    await page.click("#task-start")
    assert await page.inner_text("#task-form-problem") == "Agree to all four items first."
    for item in items:
        await page.check(f'#task-consent-items input[value="{item}"]')
    await page.click("#task-start")

    # the first preview: what, where and why, with a marker on the shared screen
    p = await next_preview(s, 0, "Big Mac")
    assert p["coordinates"] == {"x": 640, "y": 360} and p["final"] is False
    assert await page.inner_text("#task-action") == "Next: click “Big Mac”"
    assert await page.inner_text("#task-reasoning") == "'Big Mac' moves the task forward"
    assert await page.inner_text("#task-description") == "press Big Mac"
    assert vlm.sizes[0] == (1280, 720)  # the page's own screen frame reached the model
    shot = await page.locator("#task-shot").bounding_box()
    mark = await page.locator("#task-marker").bounding_box()
    assert shot and mark
    centre = (mark["x"] + mark["width"] / 2, mark["y"] + mark["height"] / 2)
    assert abs(centre[0] - (shot["x"] + shot["width"] / 2)) < 3  # 640 of 1280
    assert abs(centre[1] - (shot["y"] + shot["height"] / 2)) < 3  # 360 of 720
    assert await visible_buttons(s) == ["confirm", "skip", "pause", "cancel"]
    assert await page.inner_text("#task-status") == "Running · step 0"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.locator("#task-panel").screenshot(path=str(ARTIFACTS / "ui-task-preview.png"))

    # the same action waits in the approvals box (the gate of issue 20) ...
    await s.wait(
        f"s.approvals.pending.length === 1 && s.approvals.pending[0].call_id === "
        f"{json.dumps(p['action_id'])}",
        what="the action's approval.request",
    )
    assert not await page.locator("#approval-box").is_hidden()
    assert await page.locator("#approval-edit").is_hidden()  # approved or rejected, not edited

    # Confirm -> told to do it -> Done: the screen after it is checked; the VLM says it is
    # the wrong screen, so the step fails with its options
    await press(s, "confirm")
    await s.wait("s.tasks.executing", what="task.action_execute")
    # ... and the panel's Confirm settled it there too
    await s.wait("s.approvals.pending.length === 0", what="the approval settled")
    assert await page.locator("#approval-box").is_hidden()
    assert await page.inner_text("#task-do-now") == "Do it now: click “Big Mac”, then press Done."
    assert await visible_buttons(s) == ["done", "skip", "pause", "cancel"]
    await press(s, "done")
    await s.wait("s.tasks.task.status === 'failed' && s.tasks.failure", what="the failure")
    problem = await page.inner_text("#task-problem")
    assert "not the one expected" in problem and "Retries left: 3." in problem
    assert await visible_buttons(s) == ["retry", "take_over", "cancel"]
    assert await page.inner_text("#task-status") == "A step failed · step 0"

    # Retry: the step is read again and previewed
    await press(s, "retry")
    await next_preview(s, 1, "Add to cart")
    assert await page.is_hidden("#task-problem")
    await press(s, "confirm")
    await s.wait("s.tasks.executing", what="task.action_execute")
    await press(s, "done")

    # success; the last step asks for a final confirmation
    p = await next_preview(s, 2, "Continue")
    assert p["final"] is True
    assert await page.is_visible("#task-final")
    assert await page.inner_text('#task-buttons [data-task="confirm"]') == "Confirm the last step"
    await s.wait("s.tasks.route.length === 1", what="the route")
    route = await page.inner_text("#task-route")
    assert "Item → click “Add to cart” → Cart" in route
    assert await page.inner_text("#task-status") == "Running · step 1"

    # Pause, then Resume: the step is previewed again
    await press(s, "pause")
    await s.wait("s.tasks.task.status === 'paused'", what="paused")
    assert await visible_buttons(s) == ["resume", "cancel"]
    await press(s, "resume")
    await next_preview(s, 3, "Continue")  # result 3: the first preview, superseded
    # Skip (not executed): withdrawn, the task pauses; Resume asks once more
    await press(s, "skip")
    await s.wait("s.tasks.task.status === 'paused'", what="paused after skip")
    assert (await s.state(".tasks.results"))[-1]["reason"] == "declined"
    await press(s, "resume")
    await next_preview(s, 4, "Continue")
    await press(s, "confirm")
    await s.wait("s.tasks.executing", what="task.action_execute")
    await press(s, "done")

    # the screen after the last step is a payment form: stopped, nothing on it previewed
    await s.wait("s.tasks.blocked && s.tasks.route.length === 2", what="the payment stop")
    assert await page.inner_text("#task-status") == "Stopped at the payment screen · step 2"
    problem = await page.inner_text("#task-problem")
    assert "payment screen" in problem and "Card number" in problem
    assert await visible_buttons(s) == ["new"]
    assert await page.is_hidden("#task-preview")
    assert "Cart → click “Continue” → Checkout" in await page.inner_text("#task-route")
    # the same panel in Korean
    await page.evaluate("() => window.studio.setSetting('lang', 'ko')")
    assert await page.inner_text("#task-status") == "결제 화면에서 멈춤 · 2단계"
    assert "결제 화면이에요" in await page.inner_text("#task-problem")
    await page.locator("#task-panel").screenshot(path=str(ARTIFACTS / "ui-task-blocked-ko.png"))
    await page.evaluate("() => window.studio.setSetting('lang', 'en')")

    # New task: consent is remembered; this one fails and is taken over, then cancelled
    await press(s, "new")
    await page.wait_for_selector("#task-form:not([hidden])")
    checked = await page.eval_on_selector_all(
        "#task-consent-items input", "e => e.every(x => x.checked)"
    )
    assert checked is True
    await page.click("#task-start")
    await next_preview(s, 0, "Big Mac")
    await press(s, "confirm")
    await s.wait("s.tasks.executing", what="task.action_execute")
    await press(s, "done")
    await s.wait("s.tasks.task.status === 'failed'", what="the second failure")
    await press(s, "take_over")
    await s.wait("s.tasks.task.status === 'paused' && s.tasks.takenOver", what="taken over")
    assert "do the step yourself" in await page.inner_text("#task-problem")
    assert await visible_buttons(s) == ["resume", "cancel"]
    await press(s, "cancel")
    await s.wait("s.tasks.done && s.tasks.done.status === 'cancelled'", what="cancelled")
    assert await page.inner_text("#task-status") == "Cancelled · step 0"
    assert vlm.calls == len(ANSWERS)

    # what the panel showed is what the server stored
    tasks = await page.evaluate("async () => (await window.studio.api.request('/v1/tasks')).tasks")
    assert [t["status"] for t in tasks] == ["cancelled", "blocked_payment"]
