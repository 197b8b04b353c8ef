"""The studio as a new user meets it, in real Chromium against the real server (no speech
recognition or face model here: typed turns, the fake LLM, espeak-ng reply audio): live module
status and the offline state, the first-run setup card, the default persona, settings saved as
defaults, history (names, search, report links, delete), the usage dashboard, the avatar, and
the layout at a desktop and a phone size. Screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.browser.conftest import ARTIFACTS, OpenStudio, Studio
from tests.e2e.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def ui_server(
    tmp_path_factory: pytest.TempPathFactory, browser_llm: FakeOpenAI
) -> Iterator[ServerThread]:
    """The real app with the fake LLM, espeak-ng replies in mp3, and haru as DEFAULT_PERSONA
    (not the first persona alphabetically, which is emma)."""
    settings = make_settings(
        tmp_path_factory.mktemp("ui-server"),
        browser_llm,
        default_output_audio="mp3",
        default_persona="haru",
    )
    srv = ServerThread(settings).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def fresh_llm(browser_llm: FakeOpenAI) -> FakeOpenAI:
    browser_llm.clear()
    return browser_llm


def shot(name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)


async def typed_turn(s: Studio, text: str) -> dict:
    """Type a message and wait for its reply to be done; returns the reply entry."""
    n = len(await s.state(".replies"))
    await s.page.fill("#composer-input", text)
    await s.page.press("#composer-input", "Enter")
    return await s.wait(
        f"s.replies.length > {n} && s.replies[s.replies.length - 1].status !== 'in_progress'"
        f" && s.replies[s.replies.length - 1]",
        what="the reply",
    )


async def start(s: Studio) -> None:
    await s.page.click("#btn-start")
    await s.wait("s.sessionStatus === 'live' && s.connected", what="a live session")


async def end(s: Studio) -> None:
    await s.page.click("#btn-end")
    await s.wait("s.sessionStatus === 'ended'", what="the session to end")


# ---- live status, setup card, offline --------------------------------------------------------


async def test_module_states_show_as_they_change_in_the_interface_language(
    open_studio: OpenStudio, ui_server: ServerThread
):
    s = await open_studio(ui_server, "status-user", persona="")
    await s.wait("s.health && s.health.online === true && s.health.modules", what="a status")
    assert await s.page.text_content("#health") == "Server ready"
    assert await s.page.is_hidden("#setup-card")  # an LLM is configured
    ui_server.services.set_status("tts", "degraded", "edge-tts unreachable")
    try:
        await s.page.wait_for_function(
            "() => document.querySelector('#health').textContent.includes('Voice')",
            timeout=15_000,
        )
        assert await s.page.text_content("#health") == (
            "Server not fully ready: Voice (using the offline voice)"
        )
        await s.page.click("#lang-toggle")
        text = await s.page.text_content("#health")
        assert text == "서버 일부 준비 안 됨: 음성 (오프라인 음성 사용 중)"
        assert "tts" not in text and "degraded" not in text  # one language, no module ids
        await s.page.screenshot(path=shot("ui-status-degraded-ko.png"))
    finally:
        ui_server.services.set_status("tts", "ready")
    await s.page.wait_for_function(
        "() => document.querySelector('#health').textContent === '서버 준비됨'", timeout=15_000
    )


async def test_setup_card_without_a_language_model_and_its_test_button(
    open_studio: OpenStudio, tmp_path_factory: pytest.TempPathFactory
):
    srv = ServerThread(make_settings(tmp_path_factory.mktemp("no-llm"), None)).start()
    try:
        s = await open_studio(srv, "newcomer")
        await s.wait("s.health && s.health.needsSetup", what="the setup card")
        card = s.page.locator("#setup-card")
        assert await card.is_visible()
        assert "LLM_BASE_URL=" in await card.text_content()
        await card.get_by_role("button", name="Test connection").click()
        await s.wait("s.health.test", what="the test result")
        result = await s.page.text_content("#setup-card [data-setup='result']")
        assert result == "No language model is set yet (LLM_BASE_URL is empty)."
        await s.page.screenshot(path=shot("ui-setup-card.png"))
    finally:
        srv.stop()


async def test_a_server_that_goes_away_shows_offline_not_live(
    open_studio: OpenStudio, tmp_path_factory: pytest.TempPathFactory, browser_llm: FakeOpenAI
):
    srv = ServerThread(make_settings(tmp_path_factory.mktemp("goes-away"), browser_llm)).start()
    stopped = False
    try:
        s = await open_studio(srv, "abandoned", audio="none")
        await start(s)
        assert await s.page.text_content("#conn-text") == "Connected"
        srv.stop()
        stopped = True
        await s.wait("s.health && s.health.online === false", what="the offline state")
        await s.page.wait_for_function(
            "() => document.querySelector('#conn-text').textContent.startsWith('Offline')"
            " || document.querySelector('#conn-text').textContent.startsWith('Connection lost')",
            timeout=15_000,
        )
        assert await s.page.text_content("#health") == "Server unreachable"
        assert await s.page.get_attribute("#conn-dot", "data-state") != "open"
        await s.page.screenshot(path=shot("ui-offline.png"))
        # The browser logs each refused request as a console error: expected here.
        s.console_errors[:] = [e for e in s.console_errors if "ERR_CONNECTION_REFUSED" not in e]
    finally:
        if not stopped:
            srv.stop()


# ---- default persona and settings ------------------------------------------------------------


async def test_default_persona_then_saved_choices_become_the_defaults(
    open_studio: OpenStudio, ui_server: ServerThread, browser_llm: FakeOpenAI
):
    s = await open_studio(ui_server, "chooser", persona="")
    assert await s.page.input_value("#persona-select") == "haru"  # DEFAULT_PERSONA
    await s.page.select_option("#persona-select", "emma")
    await s.page.click("#settings-details > summary")
    await s.page.select_option("#set-instructions-mode", "replace")
    assert "replaces the persona" in await s.page.text_content("#set-instructions-label")
    await s.page.fill("#set-instructions", "You are Captain Kim, a cheerful ship's cook.")
    await s.page.locator("#set-instructions").blur()
    await s.page.wait_for_function(
        "() => document.querySelector('#settings-saved').textContent !== ''", timeout=10_000
    )
    async with httpx.AsyncClient(base_url=ui_server.url) as http:
        saved = (
            await http.get("/v1/settings", headers={"Authorization": "Bearer chooser"})
        ).json()["settings"]
    assert saved["persona"] == "emma"
    assert saved["instructions_mode"] == "replace"
    assert saved["instructions"] == "You are Captain Kim, a cheerful ship's cook."
    await s.page.locator("#settings-panel").screenshot(path=shot("ui-settings.png"))

    # A fresh browser (no local storage) of the same user gets the saved choices.
    s2 = await open_studio(ui_server, "chooser", persona="")
    assert await s2.page.input_value("#persona-select") == "emma"
    assert await s2.page.input_value("#set-instructions-mode") == "replace"
    browser_llm.queue_reply("Ahoy, soup's on!")
    await start(s2)
    session = await s2.wait("s.session && s.session.instructions_mode && s.session")
    assert session["instructions_mode"] == "replace"
    await typed_turn(s2, "Who are you?")
    system = browser_llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]
    assert "Captain Kim" in system
