"""Editing an MCP tool call's arguments in the studio's approvals panel, in real Chromium
against the real server and a real MCP server (stdio, tests/fakes/mcp_server.py): each
top-level argument is a field typed like its value, nested values are JSON text, invalid JSON
is refused in words before anything is sent, and the call runs with what the user typed."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Locator

from tests.agent.test_mcp import FAKE
from tests.e2e.browser.conftest import ARTIFACTS, OpenStudio
from tests.e2e.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.server_harness import ServerThread

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ASKED = {"name": "morning", "repeat": 2, "loud": False, "steps": ["stretch", "tea"]}


@pytest.fixture(scope="module")
def mcp_ui(
    tmp_path_factory: pytest.TempPathFactory, browser_llm: FakeOpenAI
) -> Iterator[tuple[ServerThread, Path]]:
    tmp = tmp_path_factory.mktemp("approval-edit")
    effects = tmp / "effects.jsonl"
    cfg = tmp / "mcp.json"
    server = {"command": sys.executable, "args": [FAKE, "stdio", str(effects)]}
    cfg.write_text(json.dumps({"mcpServers": {"phone": server}}))
    settings = make_settings(
        tmp, browser_llm, mcp_config=cfg, mcp_connect_timeout_s=60, llm_tools="on"
    )
    srv = ServerThread(settings).start()
    try:
        yield srv, effects
    finally:
        srv.stop()


async def test_an_mcp_call_edited_in_the_panel_runs_with_the_edited_arguments(
    mcp_ui: tuple[ServerThread, Path], open_studio: OpenStudio, browser_llm: FakeOpenAI
) -> None:
    srv, effects = mcp_ui
    browser_llm.clear()

    def model(body: dict) -> object:
        if body["messages"][-1]["role"] == "user":
            return Reply(tool_calls=[{"name": "phone__set_routine", "arguments": ASKED}])
        return "Saved."

    browser_llm.set_default(model)
    s = await open_studio(srv, "routine-editor", mic="silence", audio="none")
    await s.page.click("#btn-start")
    await s.wait("s.sessionStatus === 'live' && s.connected", what="a live session")
    await s.page.fill("#composer-input", "Save my morning routine")
    await s.page.press("#composer-input", "Enter")
    await s.page.wait_for_selector("#approval-box", state="visible")
    await s.page.click("#approval-edit")

    def field(key: str) -> Locator:
        return s.page.locator(f"#approval-fields [data-key='{key}']")

    assert await field("name").get_attribute("type") == "text"
    assert await field("repeat").get_attribute("type") == "number"
    assert await field("loud").get_attribute("type") == "checkbox"
    assert await field("steps").evaluate("el => el.tagName") == "TEXTAREA"
    assert json.loads(await field("steps").input_value()) == ["stretch", "tea"]

    await field("steps").fill('["stretch", tea]')
    await s.page.click("#approval-edit-send")
    problem = s.page.locator("#approval-edit-problem")
    await problem.wait_for(state="visible")
    assert (await problem.inner_text()).startswith("“steps” is not valid JSON: ")
    assert await s.page.is_visible("#approval-box")  # nothing was sent
    assert await s.state(".approvals.answered") == []
    ARTIFACTS.mkdir(exist_ok=True)
    await s.page.screenshot(path=str(ARTIFACTS / "studio-approval-edit-json.png"))

    # the open form follows a switch of the interface language, its refusal too
    def words(sel: str) -> Awaitable[str]:
        return s.page.locator(sel).inner_text()

    steps_label = "#approval-fields label[data-name='steps']"
    assert await words(steps_label) == "steps (JSON)"
    await s.page.click("#lang-toggle")
    await s.page.wait_for_function("document.documentElement.lang === 'ko'")
    assert await words(steps_label) == "steps (JSON 형식)"
    assert (await words("#approval-edit-problem")).startswith(
        "“steps”이(가) 올바른 JSON이 아니에요: "
    )
    assert await words("#approval-edit-send") == "이대로 해줘"
    assert await words("#approval-edit-cancel") == "취소"
    assert await words("#approval-what") == "도구: phone__set_routine"
    await s.page.click("#lang-toggle")
    await s.page.wait_for_function("document.documentElement.lang === 'en'")
    assert await words(steps_label) == "steps (JSON)"
    assert (await words("#approval-edit-problem")).startswith("“steps” is not valid JSON: ")
    assert await field("steps").input_value() == '["stretch", tea]'  # what was typed stays

    await field("name").fill("weekday")
    await field("repeat").fill("3")
    await field("loud").check()
    await field("steps").fill('["stretch", "coffee", "walk"]')
    await s.page.click("#approval-edit-send")
    await s.page.wait_for_selector("#approval-box", state="hidden")
    await s.wait(
        "s.replies.length && s.replies[s.replies.length - 1].status === 'completed'"
        " && s.replies[s.replies.length - 1].text.endsWith('Saved.')",
        what="the reply after the edited call",
    )
    ran = [json.loads(x) for x in effects.read_text().splitlines()]
    edited = {"name": "weekday", "repeat": 3, "loud": True, "steps": ["stretch", "coffee", "walk"]}
    assert ran == [{"tool": "set_routine", **edited}]
    answered = await s.state(".approvals.answered")
    assert [(a["decision"], a["arguments"]) for a in answered] == [("edit", edited)]
