"""The studio's turn-taking controls in real Chromium against the real server: the user picks
eagerness, gaze and the kind of turn detection in the settings form; the page sends them with
session.update, the server stores and echoes them (session.updated), the page shows that
echo, and the choices outlive a reload."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.browser.conftest import OpenStudio, Studio
from tests.e2e.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def turn_ui_server(
    tmp_path_factory: pytest.TempPathFactory, browser_llm: FakeOpenAI
) -> Iterator[ServerThread]:
    srv = ServerThread(make_settings(tmp_path_factory.mktemp("turn-ui"), browser_llm)).start()
    try:
        yield srv
    finally:
        srv.stop()


async def stored_turn_detection(srv: ServerThread, s: Studio, user: str) -> dict:
    sid = await s.state(".sessionId")
    async with httpx.AsyncClient(base_url=srv.url) as http:
        r = await http.get(f"/v1/sessions/{sid}", headers={"Authorization": f"Bearer {user}"})
    assert r.status_code == 200, r.text
    return r.json()["settings"]["turn_detection"]


async def start_with_defaults(open_studio: OpenStudio, srv: ServerThread, user: str) -> Studio:
    """A new browser's studio started with the form's defaults (semantic, eagerness auto,
    gaze on, barge-in on: not sent, the server's default), its settings form open."""
    s = await open_studio(srv, user, mic="silence", audio="none")
    await s.page.click("#btn-start")
    td = await s.wait("s.turnDetection && s.turnDetection.eagerness && s.turnDetection")
    assert td == {"type": "semantic", "eagerness": "auto", "gaze": True}
    await s.page.click("#settings-details > summary")
    return s


async def test_eagerness_and_gaze_reach_the_server_and_its_echo_shows(
    open_studio: OpenStudio, turn_ui_server: ServerThread
):
    srv, user = turn_ui_server, "turn-chooser"
    s = await start_with_defaults(open_studio, srv, user)
    assert await s.page.is_disabled("#set-silence")  # not used by semantic turns

    await s.page.select_option("#set-eagerness", "high")
    td = await s.wait("s.turnDetection.eagerness === 'high' && s.turnDetection", what="high")
    assert td == {"type": "semantic", "eagerness": "high", "gaze": True}
    assert await stored_turn_detection(srv, s, user) == td  # the server's own record
    echo = await s.page.text_content("#turn-echo")
    assert "High: up to 2 s" in echo and "gaze on" in echo, echo

    await s.page.uncheck("#set-gaze")
    td = await s.wait("s.turnDetection.gaze === false && s.turnDetection", what="gaze off")
    assert td == {"type": "semantic", "eagerness": "high", "gaze": False}
    assert "gaze off" in await s.page.text_content("#turn-echo")

    # server VAD: eagerness and gaze do not apply, the silence does
    await s.page.select_option("#set-turn-type", "server_vad")
    await s.wait("s.turnDetection.type === 'server_vad'", what="server VAD")
    assert await s.page.is_disabled("#set-eagerness") and await s.page.is_enabled("#set-silence")
    await s.page.fill("#set-silence", "700")
    await s.page.locator("#set-silence").blur()
    td = await s.wait("s.turnDetection.silence_ms === 700 && s.turnDetection", what="700 ms")
    assert td == {"type": "server_vad", "silence_ms": 700}
    assert await stored_turn_detection(srv, s, user) == td

    # push to talk is the mic panel's toggle too
    await s.page.select_option("#set-turn-type", "none")
    await s.wait("s.turnDetection.type === 'none'", what="push to talk")
    assert await s.page.is_checked("#ptt-toggle")
    await s.page.uncheck("#ptt-toggle")
    td = await s.wait("s.turnDetection.type === 'server_vad' && s.turnDetection")
    assert await s.page.input_value("#set-turn-type") == "server_vad"

    # the Korean labels
    await s.page.select_option("#set-turn-type", "semantic")
    await s.wait("s.turnDetection.type === 'semantic'", what="semantic again")
    await s.page.click("#lang-toggle")
    echo = await s.page.text_content("#turn-echo")
    assert "서버에 적용됨" in echo and "높음" in echo and "사용 안 함" in echo, echo
    assert await s.page.text_content("label[for=set-eagerness]") == "응답 적극성"

    # the choices are this browser's: a reload keeps them and the new session gets them
    await s.page.reload()
    await s.page.wait_for_function("() => window.studio && window.studio.ready")
    assert await s.page.input_value("#set-eagerness") == "high"
    assert not await s.page.is_checked("#set-gaze")
    await s.page.click("#btn-start")
    td = await s.wait("s.turnDetection && s.turnDetection.eagerness && s.turnDetection")
    assert td == {"type": "semantic", "eagerness": "high", "gaze": False}


async def test_let_me_interrupt_it_switches_barge_in_off_and_its_echo_shows(
    open_studio: OpenStudio, turn_ui_server: ServerThread
):
    srv, user = turn_ui_server, "no-interrupter"
    s = await start_with_defaults(open_studio, srv, user)  # barge-in on: the server's default
    assert await s.page.is_checked("#set-barge-in")
    assert "interrupting on" in await s.page.text_content("#turn-echo")

    await s.page.uncheck("#set-barge-in")
    td = await s.wait("s.turnDetection.barge_in === false && s.turnDetection", what="off")
    assert td == {"type": "semantic", "eagerness": "auto", "gaze": True, "barge_in": False}
    assert await stored_turn_detection(srv, s, user) == td  # the server's own record
    assert "interrupting off" in await s.page.text_content("#turn-echo")

    # the choice holds for server VAD too; push to talk has no barge-in to choose
    await s.page.select_option("#set-turn-type", "server_vad")
    td = await s.wait("s.turnDetection.type === 'server_vad' && s.turnDetection")
    assert td == {"type": "server_vad", "barge_in": False}
    await s.page.select_option("#set-turn-type", "none")
    await s.wait("s.turnDetection.type === 'none'", what="push to talk")
    assert await s.page.is_disabled("#set-barge-in")
    assert "interrupting" not in await s.page.text_content("#turn-echo")

    # the Korean labels
    await s.page.select_option("#set-turn-type", "semantic")
    await s.wait("s.turnDetection.type === 'semantic'", what="semantic again")
    assert await s.page.is_enabled("#set-barge-in")
    await s.page.click("#lang-toggle")
    assert await s.page.text_content("label:has(#set-barge-in) span") == "말로 끼어들기 허용"
    echo = await s.page.text_content("#turn-echo")
    assert "끼어들기 사용 안 함" in echo, echo

    # this browser keeps the choice: a reload and a new session start with it
    await s.page.reload()
    await s.page.wait_for_function("() => window.studio && window.studio.ready")
    assert not await s.page.is_checked("#set-barge-in")
    await s.page.click("#btn-start")
    td = await s.wait("s.turnDetection && s.turnDetection.eagerness && s.turnDetection")
    assert td == {"type": "semantic", "eagerness": "auto", "gaze": True, "barge_in": False}
    # switched on again: the server's default is back
    await s.page.click("#settings-details > summary")
    await s.page.check("#set-barge-in")
    td = await s.wait("s.turnDetection.barge_in === undefined && s.turnDetection", what="on")
    assert td == {"type": "semantic", "eagerness": "auto", "gaze": True}
    assert await stored_turn_detection(srv, s, user) == td
