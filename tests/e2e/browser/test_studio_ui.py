"""The studio as a new user meets it, in real Chromium against the real server (no speech
recognition or face model here: typed turns, the fake LLM, espeak-ng reply audio): live module
status and the offline state, the first-run setup card, the default persona, settings saved as
defaults, history (names, search, report links, delete), the usage dashboard, the avatar, and
the layout at a desktop and a phone size. Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.store import Sample
from tests.e2e.browser.conftest import ARTIFACTS, OpenStudio, Studio
from tests.e2e.conftest import make_settings
from tests.fakes.openai_server import FakeOpenAI, Reply
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
    s = await open_studio(ui_server, "status-user", mic="silence", persona="")
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
        s = await open_studio(srv, "newcomer", mic="silence")
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
        s = await open_studio(srv, "abandoned", mic="silence", audio="none")
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
        # The browser logs each refused request as a console error: expected here. The page
        # is closed first, so no reconnect attempt logs one after the filter.
        await s.page.close()
        s.console_errors[:] = [e for e in s.console_errors if "ERR_CONNECTION_REFUSED" not in e]
    finally:
        if not stopped:
            srv.stop()


# ---- default persona and settings ------------------------------------------------------------


async def test_default_persona_then_saved_choices_become_the_defaults(
    open_studio: OpenStudio, ui_server: ServerThread, browser_llm: FakeOpenAI
):
    auth = {"Authorization": "Bearer chooser"}
    async with httpx.AsyncClient(base_url=ui_server.url) as http:  # saved elsewhere before
        r = await http.put("/v1/settings", json={"proactive_mode": "quiet"}, headers=auth)
        assert r.status_code == 200, r.text
    s = await open_studio(ui_server, "chooser", mic="silence", persona="")
    assert await s.page.input_value("#persona-select") == "haru"  # DEFAULT_PERSONA
    await s.page.select_option("#persona-select", "emma")
    await s.page.click("#settings-details > summary")
    await s.page.select_option("#set-instructions-mode", "replace")
    assert "replaces the persona" in await s.page.text_content("#set-instructions-label")
    await s.page.fill("#set-instructions", "You are Captain Kim, a cheerful ship's cook.")
    await s.page.locator("#set-instructions").blur()
    await s.wait("s.savedDefaults && s.savedDefaults.instructions", what="the defaults saved")
    assert await s.page.text_content("#settings-saved") == (
        "Saved as your defaults for new sessions."
    )
    async with httpx.AsyncClient(base_url=ui_server.url) as http:
        saved = (
            await http.get("/v1/settings", headers={"Authorization": "Bearer chooser"})
        ).json()["settings"]
    assert saved["persona"] == "emma"
    assert saved["instructions_mode"] == "replace"
    assert saved["instructions"] == "You are Captain Kim, a cheerful ship's cook."
    assert saved["proactive_mode"] == "quiet"  # the page's PUT kept what it does not own
    await s.page.locator("#settings-panel").screenshot(path=shot("ui-settings.png"))

    # A fresh browser (no local storage) of the same user gets the saved choices.
    s2 = await open_studio(ui_server, "chooser", mic="silence", persona="")
    assert await s2.page.input_value("#persona-select") == "emma"
    assert await s2.page.input_value("#set-instructions-mode") == "replace"
    browser_llm.queue_reply("Ahoy, soup's on!")
    await start(s2)
    session = await s2.wait("s.session && s.session.instructions_mode && s.session")
    assert session["instructions_mode"] == "replace"
    await typed_turn(s2, "Who are you?")
    system = browser_llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]
    assert "Captain Kim" in system


# ---- history, dashboard, presence -----------------------------------------------------------


async def test_history_names_search_report_link_and_delete(
    open_studio: OpenStudio, ui_server: ServerThread, browser_llm: FakeOpenAI
):
    s = await open_studio(ui_server, "historian", mic="silence", audio="none")
    for words in ("Let us plan a trip to Busan", "What should I cook tonight"):
        browser_llm.queue_reply(tokens=["[hap", "py] Sounds ", "good."])  # a mark, split
        await start(s)
        reply = await typed_turn(s, words)
        # the mark is the face's emotion (no audio here), never text on the page
        assert reply["text"] == "Sounds good."
        assert await s.page.get_attribute("#presence", "data-emotion") == "happy"
        assert "[" not in await s.page.text_content("#conversation-panel")
        await end(s)
    info = await s.page.text_content("#session-info")
    assert info.startswith("With Emma Clarke since ") and info.endswith(" · Ended"), info
    assert (await s.state(".sessionId")) not in info  # the id only on hover
    # A normal End is not an error: no red "Disconnected".
    assert await s.page.text_content("#conn-text") == "Session ended"
    assert await s.page.get_attribute("#conn-dot", "data-state") == "ended"

    await s.page.click("#history-details > summary")
    rows = s.page.locator("#history-list .history-row")
    await rows.nth(1).wait_for(timeout=10_000)
    first = rows.nth(0)  # newest first
    assert await first.locator(".history-persona").text_content() == "Emma Clarke"
    assert await first.locator(".history-title").text_content() == "What should I cook tonight"
    assert "2 messages" in await first.locator(".history-date").text_content()
    # No 32-character hex id anywhere a person reads.
    for sid in [r["id"] async for r in _sessions(ui_server, "historian")]:
        assert sid not in await s.page.locator("#history-panel").inner_text()
    href = await first.locator("a.history-report").get_attribute("href")
    async with httpx.AsyncClient(base_url=ui_server.url) as http:
        page = await http.get(href)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]

    await s.page.fill("#history-search", "busan")
    await s.page.wait_for_function(
        "() => document.querySelectorAll('#history-list .history-row').length === 1",
        timeout=10_000,
    )
    assert "Busan" in await rows.nth(0).locator(".history-title").text_content()
    await s.page.locator("#history-panel").screenshot(path=shot("ui-history.png"))

    await rows.nth(0).get_by_role("button", name="Delete").click()
    await rows.nth(0).get_by_text("Delete this session and its messages for good?").wait_for()
    await rows.nth(0).get_by_role("button", name="Keep").click()  # changed my mind
    assert len([r async for r in _sessions(ui_server, "historian")]) == 2
    await rows.nth(0).get_by_role("button", name="Delete").click()
    await rows.nth(0).locator(".history-delete-yes").click()
    await s.page.wait_for_function(
        "() => document.querySelectorAll('#history-list .history-row').length === 0",
        timeout=10_000,
    )
    left = [r["title"] async for r in _sessions(ui_server, "historian")]
    assert left == ["What should I cook tonight"]


async def _sessions(server: ServerThread, user: str):
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/v1/sessions", headers={"Authorization": f"Bearer {user}"})
    for x in r.json()["sessions"]:
        yield x


async def test_dashboard_draws_the_usage_of_a_date_range(
    open_studio: OpenStudio, ui_server: ServerThread, browser_llm: FakeOpenAI
):
    s = await open_studio(ui_server, "counter", mic="silence", audio="mp3")
    browser_llm.queue_reply("Hello there. Nice to meet you.")
    await start(s)
    reply = await typed_turn(s, "Hello!")
    assert reply["status"] == "completed"
    # two voice replies with the latency the user hears (as a voice turn stores its timings)
    sid = await s.state(".sessionId")
    for eos_ms in (640, 910):
        timings = {"ttft_ms": 300, "eos_to_first_audio_ms": eos_ms, "eos_to_played_ms": eos_ms + 40}
        add = ui_server.services.store.add_message
        await ui_server.call(add("counter", sid, "emma", "assistant", "Yes.", timings=timings))
    await end(s)
    await s.page.click("#tab-dashboard")
    dash = await s.wait("s.dashboard.loaded && s.dashboard", what="the dashboard")
    assert dash["days"] == 14  # the default range: the last two weeks
    assert dash["totals"]["llm_calls"] >= 1 and dash["totals"]["output_tokens"] >= 1
    assert dash["personas"] == ["emma"]  # by id; the table shows the name
    assert await s.page.is_hidden("#studio-view")
    totals = await s.page.text_content("#dash-totals")
    assert "language model calls" in totals and "memory calls" in totals
    assert "(0 replies cut short, counted too)" in totals
    # The charts with data have bars (pixels of the first series' colour), the rest say so.
    coloured = await s.page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#dash-charts figure')].map((f) => {
            const c = f.querySelector('canvas'); const g = c.getContext('2d');
            const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] === 0x2f && d[i+1] === 0x7e && d[i+2] === 0xd8) n++;
            return [f.dataset.chart, n]; }))"""
    )
    assert coloured["calls"] > 50 and coloured["tokens"] > 50 and coloured["ttft"] > 50
    assert coloured["eos"] > 50 and coloured["played"] > 50
    rows = await s.page.locator("#dash-personas tbody tr td").all_text_contents()
    assert rows[0] == "Emma Clarke" and rows[1] == "3" and rows[2].endswith(" ms")
    assert rows[4] == "775 / 897 ms"  # end of speech -> first sound sent, p50 / p95
    # Another range: a year ago has nothing.
    await s.page.fill("#dash-from", "2025-01-01")
    await s.page.fill("#dash-to", "2025-01-10")
    await s.page.click("#dash-form button[type=submit]")
    await s.wait("s.dashboard.days === 10", what="the new range")
    assert s.page.url.endswith("#dashboard")
    await s.page.fill("#dash-from", "2026-01-01")
    await s.page.fill("#dash-to", "2026-12-31")
    await s.page.click("#dash-form button[type=submit]")
    await s.wait("s.dashboard.days > 300", what="a year")
    await s.page.screenshot(path=shot("ui-dashboard.png"), full_page=True)


async def test_avatar_listens_thinks_and_speaks_with_the_reply_audio(
    open_studio: OpenStudio, ui_server: ServerThread, browser_llm: FakeOpenAI
):
    s = await open_studio(ui_server, "watcher", mic="silence", audio="mp3")
    assert await s.page.get_attribute("#presence", "data-state") == "idle"
    assert await s.page.text_content("#presence [data-face='initials']") == "EC"
    await start(s)
    assert await s.page.get_attribute("#presence", "data-state") == "listening"
    browser_llm.queue_reply(
        "Well, let me tell you a long story about a boat that sails across the sea.",
        ttft_ms=800,
    )
    await s.page.fill("#composer-input", "Tell me a story")
    await s.page.press("#composer-input", "Enter")
    await s.wait("s.presence.state === 'thinking'", what="thinking")
    await s.wait("s.presence.state === 'speaking'", what="speaking")
    # The mouth follows the audio playing: it opens, and it moves.
    await s.wait("s.presence.peak > 0.2", what="the mouth to open")
    await s.page.locator("#presence").screenshot(path=shot("ui-avatar-speaking.png"))
    await s.wait("s.presence.state === 'listening'", timeout_s=60, what="back to listening")
    assert (await s.state(".presence"))["mouth"] < 0.05


SHAPE_RX = {"aa": 7.0, "ih": 10.0, "ou": 3.5, "ee": 9.0, "oh": 5.0, None: 7.0}  # presence.js


def viseme_at(chunks: list[list[list]], ms: float) -> str | bool | None:
    """The viseme the timeline names at ``ms`` into the reply (False: not covered)."""
    start = 0.0
    for keys in chunks:
        for dur, targets in keys:
            if ms < start + dur:
                return next((v for v in targets if v in SHAPE_RX), None)
            start += dur
    return False


async def test_avatar_mouth_follows_the_viseme_timeline(
    open_studio: OpenStudio, ui_server: ServerThread, browser_llm: FakeOpenAI
):
    s = await open_studio(ui_server, "lips", mic="silence", audio="mp3")
    await start(s)
    browser_llm.queue_reply(
        tokens=[
            "[hap",
            "py] Oh, what a lovely idea, I adore it! ",
            "[sad] But my old boat ",
            "sank in the cold sea.",
        ],
        ttft_ms=300,
    )
    await s.page.fill("#composer-input", "Shall we go sailing?")
    await s.page.press("#composer-input", "Enter")
    await s.wait("s.presence.state === 'speaking'", what="speaking")
    shapes = set()
    while (await s.state(".presence.state")) == "speaking":  # the DOM's mouth, as drawn
        shapes.add(await s.page.get_attribute("#presence [data-face='mouth']", "rx"))
        await s.page.wait_for_timeout(40)
    p = await s.state(".presence")
    timeline = p["timeline"]["chunks"]
    rid = p["timeline"]["responseId"]
    trace = [x for x in p["trace"] if x["r"] == rid]
    on_timeline = [x for x in trace if x["src"] == "visemes"]
    # the timeline drives the mouth for nearly all of the reply (the level only fills gaps)
    assert len(on_timeline) >= 0.8 * len(trace) and len(on_timeline) > 30, p["trace"][-5:]
    # each frame shows the viseme the timeline names at that moment of the audio (within
    # 40 ms: a frame straddles a keyframe boundary now and then)
    ok = 0
    for x in on_timeline:
        near = {viseme_at(timeline, x["t"] + d) for d in (-40, 0, 40)}
        ok += x["v"] in near and x["rx"] == SHAPE_RX[x["v"]]
    assert ok >= 0.95 * len(on_timeline), (ok, len(on_timeline))
    seen = {x["v"] for x in on_timeline}
    assert None in seen and len(seen - {None}) >= 3, seen  # closed at pauses, vowels between
    assert {float(r) for r in shapes} & {3.5, 5.0, 9.0, 10.0}  # the drawn mouth changed shape
    # the persona's marks: happy first, then sad, from the timeline of the sentence playing
    emotions = [x["e"] for x in on_timeline]
    assert emotions[0] == "happy" and emotions[-1] == "sad"
    reply = (await s.state(".replies"))[-1]
    assert "[" not in reply["text"] and reply["text"].startswith("Oh, what a lovely idea")


# ---- layout --------------------------------------------------------------------------------

OVERFLOWS = """() => {
  const w = document.documentElement.clientWidth; const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    // Inside a scrolling box (the conversation, a code sample) is fine: it scrolls.
    let p = el.parentElement, clipped = false;
    while (p && p !== document.body) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') { clipped = true; break; }
      p = p.parentElement;
    }
    if (!clipped && (r.left < -1 || r.right > w + 1)) out.push(`${el.tagName}#${el.id}.${el.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return {out, scroll: document.documentElement.scrollWidth, w};
}"""

COVERED = """() => {
  const readings = document.querySelector('#perception-panel .facts').getBoundingClientRect();
  return [...document.querySelectorAll('.toast')].map((t) => t.getBoundingClientRect()).filter((r) =>
    r.left < readings.right && r.right > readings.left && r.top < readings.bottom && r.bottom > readings.top).length;
}"""


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
async def test_layout_nothing_overflows_and_toasts_leave_the_readings_visible(
    open_studio: OpenStudio, ui_server: ServerThread, size: tuple[int, int]
):
    w, h = size
    s = await open_studio(ui_server, f"layout-{w}", mic="silence", audio="none")
    await s.page.set_viewport_size({"width": w, "height": h})
    # A long error and a warning on screen, as a user meets them.
    await s.page.evaluate("() => window.studio.sendText('hello')")  # not connected: an error
    await s.page.evaluate(
        "() => window.studio.setSetting('token', 'x'.repeat(300))"
    )  # a bad token: long errors from the REST calls
    await s.page.wait_for_selector(".toast", timeout=10_000)
    for lang in ("en", "ko"):
        if lang == "ko":
            await s.page.click("#lang-toggle")
        for view in ("#", "#dashboard"):
            await s.page.evaluate(f"() => {{ location.hash = '{view}'; }}")
            await s.page.wait_for_timeout(300)
            found = await s.page.evaluate(OVERFLOWS)
            assert found["out"] == [] and found["scroll"] <= found["w"], (lang, view, found)
        await s.page.evaluate("() => { location.hash = ''; }")
        # Scroll the readings to the top of the screen: still no toast over them.
        await s.page.locator("#perception-panel").scroll_into_view_if_needed()
        assert await s.page.evaluate(COVERED) == 0
        await s.page.evaluate("() => window.scrollTo(0, 0)")
        assert await s.page.evaluate(COVERED) == 0
        await s.page.screenshot(path=shot(f"ui-layout-{w}x{h}-{lang}.png"))
    status = await s.page.locator("#status-line").bounding_box()
    assert status is None or status["width"] <= w  # one line, never wider than the screen
    # The bad token's 401s are logged by the browser: expected here.
    s.console_errors[:] = [e for e in s.console_errors if "401 (Unauthorized)" not in e]


# ---- language ------------------------------------------------------------------------------


async def test_server_errors_are_translated_by_code_and_voice_is_described_in_words(
    open_studio: OpenStudio, ui_server: ServerThread
):
    s = await open_studio(ui_server, "speaker-ko", mic="silence", audio="none", lang="ko")
    await start(s)
    await s.page.evaluate(
        "() => window.studio.ws.sendJson({type: 'session.update', session: {persona: 'nobody'}})"
    )
    err = await s.wait("(s.errors.find((e) => e.code === 'unknown_persona') || false)")
    assert err["text"] == "서버에 그런 페르소나가 없습니다."
    toast = s.page.locator(".toast", has_text="서버에 그런 페르소나가 없습니다.")
    await toast.wait_for(timeout=5000)
    assert "persona" not in (await toast.inner_text()).lower()  # the English detail: hover only
    assert await toast.get_attribute("title") == "No persona with that id."
    # How a voice sounds, in words of the interface language; the numbers stay on hover.
    words = await s.page.evaluate(
        """() => import('./js/perception.js').then((m) => [
            m.voiceWords({pitch_var: 1.2, rate_wps: 3.2, pause_ratio: 0.2}),
            m.voiceWords({pitch_var: 6.0, rate_wps: 1.0, pause_ratio: 0.7})])"""
    )
    assert words == ["차분한 목소리, 조금 빠른 편", "아주 활기찬 목소리, 느린 편, 쉼이 많음"]
    await s.page.click("#lang-toggle")
    words = await s.page.evaluate(
        "() => import('./js/perception.js').then((m) => m.voiceWords({pitch_var: 1.2, rate_wps: 3.2}))"
    )
    assert words == "Steady voice, a little fast"


# ---- the report page ---------------------------------------------------------------------


async def test_report_page_speaks_in_words_with_the_numbers_on_hover(
    open_studio: OpenStudio, ui_server: ServerThread, browser_llm: FakeOpenAI
):
    """The report a user opens from End: how their voice sounded in words (the studio's),
    no engineer units on the page, the measurements in hover texts, fits a phone."""
    s = await open_studio(ui_server, "reportee", mic="silence", audio="none")
    await start(s)
    browser_llm.queue_reply("Nice to meet you.")
    await typed_turn(s, "Hello there, how was your day?")
    sid = await s.state(".sessionId")
    voice = [
        Sample("voice", 2500, {"pitch_hz": 182.4, "pitch_var": 1.2, "rate_wps": 3.2,
                               "volume_db": -23.5, "pause_ratio": 0.2, "energy": 0.7,
                               "warmth": 0.2}),
        Sample("voice", 6100, {"pitch_hz": 176.0, "pitch_var": 4.6, "rate_wps": 1.1,
                               "volume_db": -25.0, "pause_ratio": 0.6, "energy": 0.5,
                               "warmth": 0.5}),
    ]  # fmt: skip
    await ui_server.call(ui_server.services.store.add_samples("reportee", sid, voice))
    await end(s)
    link = s.page.locator("#report-link a")
    await link.wait_for(timeout=10_000)
    page = await s.page.context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(ui_server.url + (await link.get_attribute("href") or ""))

    shown = await page.evaluate("() => document.body.innerText")
    for unit in ("Hz", "dB", "semitone", "words/s", "wps", "samples"):
        assert unit not in shown, (unit, shown)
    rows = page.locator("ol.utterances li")
    assert await rows.all_inner_texts() == [
        "#1 차분한 목소리, 조금 빠른 편 Steady voice, a little fast",
        "#2 아주 활기찬 목소리, 느린 편, 쉼이 많음 Very animated voice, slow, many pauses",
    ]
    assert await rows.nth(0).get_attribute("title") == (
        "#1: pitch 182 Hz, spread 1.2 semitones, 3.2 words/s, level -24 dBFS, pauses 20%"
    )
    # the chart points carry the same numbers on hover; the axes say words, not units
    tips = await page.eval_on_selector_all(
        "#chart-voice-rate circle title", "(ts) => ts.map((t) => t.textContent)"
    )
    assert tips[1].startswith("#2: pitch 176 Hz") and len(tips) == 2
    axis = await page.eval_on_selector_all(
        "#chart-voice-rate text.axis", "(ts) => ts.map((t) => t.textContent)"
    )
    assert "느림 slow" in axis and "빠름 fast" in axis
    # the details table: the mean voice, energy and warmth in words, numbers on hover
    cell = page.locator('td[data-metric="voice"]')
    assert await cell.inner_text() == "생기 있는 목소리, 편안한 속도 · Lively voice, an easy pace"
    assert "pitch 179 Hz" in (await cell.get_attribute("title") or "")
    assert await page.locator('td[data-metric="mean_energy"]').inner_text() == "보통 · moderate"
    assert await page.locator('td[data-metric="mean_energy"]').get_attribute("title") == (
        "0.60 (0-1)"
    )
    meta = page.locator("div.meta")
    assert "종료됨 · ended" in await meta.inner_text()
    assert "voice readings 2" in (await meta.get_attribute("title") or "")
    for w, h in ((1280, 800), (390, 844)):
        await page.set_viewport_size({"width": w, "height": h})
        found = await page.evaluate(OVERFLOWS)
        assert found["out"] == [] and found["scroll"] <= found["w"], (w, found)
        await page.screenshot(path=shot(f"ui-report-{w}x{h}.png"), full_page=True)
    assert problems == []


# ---- approvals -------------------------------------------------------------------------------


async def test_an_approval_is_asked_in_words_and_answered_with_a_click(
    ui_server: ServerThread, open_studio: OpenStudio, fresh_llm: FakeOpenAI
) -> None:
    """Forgetting a memory waits for the user: the panel shows the persona's question (the
    memory's text, not its id); No keeps it, Yes forgets it, and the panel goes away."""
    memory = ui_server.services.memory
    kite = await ui_server.call(memory.add("approver", "Approver keeps a red kite", "hobby"))

    def model(body: dict) -> object:
        if body["messages"][-1]["role"] == "user":
            call = {"id": "d1", "name": "delete_memory", "arguments": {"memory_id": kite}}
            return Reply(tool_calls=[call])
        return "Okay."

    fresh_llm.set_default(model)
    s = await open_studio(ui_server, "approver", mic="silence", audio="none")
    await start(s)
    for button, kept in (("#approval-reject", 1), ("#approval-approve", 0)):
        await s.page.fill("#composer-input", "Please forget my kite")
        await s.page.press("#composer-input", "Enter")
        await s.page.wait_for_selector("#approval-box", state="visible")
        question = await s.page.inner_text("#approval-question")
        assert question == (
            'Before I do that, I need your okay: Forget that "Approver keeps a red kite". '
            "Shall I go ahead? Say yes or no."
        )
        assert await s.page.inner_text("#approval-what") == "Tool: delete_memory"
        if kept:
            await s.page.screenshot(path=shot("studio-approval.png"))
        await s.page.click(button)
        await s.page.wait_for_selector("#approval-box", state="hidden")
        await s.wait(
            "s.replies.length && s.replies[s.replies.length - 1].status === 'completed'"
            " && s.replies[s.replies.length - 1].text.endsWith('Okay.')",
            what="the reply after the decision",
        )
        left = [m.memory for m in await ui_server.call(memory.list("approver", 20))]
        assert left.count("Approver keeps a red kite") == kept
    answered = await s.state(".approvals.answered")
    assert [a["decision"] for a in answered] == ["reject", "approve"]
    await end(s)


async def test_an_approval_is_edited_or_refused_with_a_reason_in_the_panel(
    ui_server: ServerThread, open_studio: OpenStudio, fresh_llm: FakeOpenAI
) -> None:
    """Change shows the call's argument as a field: the edited call runs (the other memory is
    forgotten, the asked-about one stays). No with a "why not" sends the reason, and the model
    reads it in its next request. The open edit form fits a phone screen."""
    memory = ui_server.services.memory
    red = await ui_server.call(memory.add("editor", "Editor keeps a red kite", "hobby"))
    blue = await ui_server.call(memory.add("editor", "Editor keeps a blue kite", "hobby"))

    def model(body: dict) -> object:
        if body["messages"][-1]["role"] == "user":
            return Reply(tool_calls=[{"name": "delete_memory", "arguments": {"memory_id": red}}])
        return "Okay."

    fresh_llm.set_default(model)
    s = await open_studio(ui_server, "editor", mic="silence", audio="none")
    await start(s)

    async def ask() -> int:
        n = len(await s.state(".replies"))
        await s.page.fill("#composer-input", "Please forget my kite")
        await s.page.press("#composer-input", "Enter")
        await s.page.wait_for_selector("#approval-box", state="visible")
        return n

    async def reply_done(n: int) -> None:
        await s.wait(
            f"s.replies.length > {n} && s.replies[s.replies.length - 1].status === 'completed'"
            " && s.replies[s.replies.length - 1].text.endsWith('Okay.')",
            what="the reply after the decision",
        )

    n = await ask()
    await s.page.click("#approval-edit")
    field = s.page.locator("#approval-fields [data-key='memory_id']")
    assert await field.get_attribute("type") == "text"
    assert await field.input_value() == red
    await s.page.set_viewport_size({"width": 390, "height": 844})
    found = await s.page.evaluate(OVERFLOWS)
    assert found["out"] == [] and found["scroll"] <= found["w"], found
    await s.page.screenshot(path=shot("studio-approval-edit-390x844.png"))
    await s.page.set_viewport_size({"width": 1280, "height": 800})
    await field.fill(blue)
    await s.page.click("#approval-edit-send")
    await s.page.wait_for_selector("#approval-box", state="hidden")
    await reply_done(n)
    left = [m.memory for m in await ui_server.call(memory.list("editor", 20))]
    # the edited call ran, not the asked one
    assert "Editor keeps a red kite" in left and "Editor keeps a blue kite" not in left

    n = await ask()
    assert not await s.page.is_visible("#approval-edit-form")  # a new request starts closed
    await s.page.fill("#approval-why", "I still fly that kite")
    await s.page.click("#approval-reject")
    await s.page.wait_for_selector("#approval-box", state="hidden")
    await reply_done(n)
    tool_lines = [
        m["content"]
        for m in fresh_llm.chat_requests(mem0=False)[-1]["body"]["messages"]
        if m["role"] == "tool"
    ]
    assert any(
        "The user did not approve delete_memory (rejected): I still fly that kite" in c
        for c in tool_lines
    ), tool_lines
    left = [m.memory for m in await ui_server.call(memory.list("editor", 20))]
    assert "Editor keeps a red kite" in left
    answered = await s.state(".approvals.answered")
    assert [a["decision"] for a in answered] == ["edit", "reject"]
    assert answered[0]["arguments"] == {"memory_id": blue}
    assert answered[1]["message"] == "I still fly that kite"
    await end(s)


async def test_speaking_first_choices_are_saved_and_follow_the_live_session(
    ui_server: ServerThread, open_studio: OpenStudio
) -> None:
    """The studio's 'Speaking first' fields: a bad quiet-hours value is refused in words; the
    mode, quiet hours and the camera/screen switch are saved as the user's defaults (with the
    browser's time zone) and the live session follows at once (mode off: an app's request to
    speak first is refused)."""
    s = await open_studio(ui_server, "shy", mic="silence", audio="none")
    await start(s)
    await s.page.click("#settings-details > summary")
    await s.page.fill("#set-proactive-quiet", "late night")
    await s.page.dispatch_event("#set-proactive-quiet", "change")
    problem = await s.page.wait_for_selector("#proactive-problem", state="visible")
    assert await problem.inner_text() == "Quiet hours look like 23:00-07:00 (or leave it empty)."
    await s.page.fill("#set-proactive-quiet", "23:00-07:00")
    await s.page.dispatch_event("#set-proactive-quiet", "change")
    await s.page.check("#set-proactive-vision")
    await s.page.select_option("#set-proactive-mode", "off")
    await s.wait("s.proactive.mode === 'off' && !s.proactive.problem", what="the choices")
    async with httpx.AsyncClient(
        base_url=ui_server.url, headers={"Authorization": "Bearer shy"}
    ) as h:
        for _ in range(100):  # each change is saved as it is made
            saved = (await h.get("/v1/settings")).json()["settings"]
            if saved.get("proactive_mode") == "off":
                break
            await asyncio.sleep(0.05)
        r = await h.post("/v1/proactive/trigger", json={"reason": "new mail"})
    assert saved["proactive_mode"] == "off" and saved["proactive_quiet_hours"] == "23:00-07:00"
    assert saved["proactive_vision"] is True and saved["timezone"]
    assert r.status_code == 409 and "mode off" in r.json()["detail"]
    await end(s)


async def test_toasts_on_screen_switch_language_with_the_page(
    open_studio: OpenStudio, ui_server: ServerThread
):
    """Toasts already shown say the same thing in the new language after a switch: the
    page's own problems, a server error by its code, their labels, repeat counts, the close
    button and the status line; the server's wording stays on hover."""
    s = await open_studio(ui_server, "polyglot", mic="silence", audio="none")
    for _ in range(2):  # the same problem twice: one toast, counted
        await s.page.evaluate("() => window.studio.sendText('hello')")
    await start(s)
    await s.page.evaluate(
        "() => window.studio.ws.sendJson({type: 'session.update', session: {persona: 'nobody'}})"
    )
    alerts = s.page.locator("#toasts-alert .toast")
    await alerts.nth(1).wait_for(timeout=10_000)
    texts = "() => [...document.querySelectorAll('#toasts-alert .toast')].map((t) => t.innerText)"

    def shown(label: str, text: str, count: str = "") -> str:
        return f"{label}: {text}{count}\n×"

    assert await s.page.evaluate(texts) == [
        shown("Error", "Not connected: start a session first.", " (×2)"),
        shown("Error", "That persona does not exist on the server."),
    ]
    await s.page.click("#lang-toggle")
    await s.page.wait_for_function("() => document.documentElement.lang === 'ko'")
    assert await s.page.evaluate(texts) == [
        shown("오류", "연결되어 있지 않습니다. 먼저 세션을 시작하세요.", " (×2)"),
        shown("오류", "서버에 그런 페르소나가 없습니다."),
    ]
    assert await alerts.nth(0).locator(".toast-close").get_attribute("aria-label") == "닫기"
    assert await alerts.nth(1).get_attribute("title") == "No persona with that id."
    assert await s.page.text_content("#status-line") == "서버에 그런 페르소나가 없습니다."
    # the same problem again, now in Korean: still one toast, counted on
    await s.page.evaluate("() => window.studio.end()")
    await s.wait("s.sessionStatus === 'ended'", what="the session to end")
    await s.page.evaluate("() => window.studio.sendText('hello')")
    assert (await s.page.evaluate(texts))[0] == shown(
        "오류", "연결되어 있지 않습니다. 먼저 세션을 시작하세요.", " (×3)"
    )
    await s.page.click("#lang-toggle")  # and back
    assert (await s.page.evaluate(texts))[1] == shown(
        "Error", "That persona does not exist on the server."
    )


async def test_recurring_reminders_are_made_listed_and_cancelled_in_the_studio(
    open_studio: OpenStudio, ui_server: ServerThread
):
    """Every day / every week at a time, in the browser's time zone: listed in words in the
    interface language, cancelled from the list; the form fits a phone."""
    s = await open_studio(ui_server, "planner", mic="silence", audio="none")
    page = s.page
    await page.click("#reminders-details > summary")
    await page.locator("#reminder-list li.muted").wait_for(timeout=5000)
    assert await page.is_hidden("#reminder-at") and await page.is_visible("#reminder-minutes")
    await page.select_option("#reminder-repeat", "weekly")
    assert await page.is_visible("#reminder-at") and await page.is_visible("#reminder-weekday")
    assert await page.is_hidden("#reminder-minutes")
    await page.select_option("#reminder-weekday", "tuesday")

    async def add(text: str, at: str, listed: str) -> Any:
        await page.fill("#reminder-text", text)
        await page.fill("#reminder-at", at)
        await page.click("#reminder-add")
        item = page.locator("#reminder-list .reminder-item", has_text=text)
        await item.wait_for(timeout=5000)
        assert (await item.locator(".reminder-due").inner_text()).startswith(listed)
        return item

    bins = await add("Bins out", "19:00", "Every Tuesday at 19:00 · next: ")
    await page.select_option("#reminder-repeat", "daily")
    assert await page.is_hidden("#reminder-weekday")
    await add("Stretch", "07:30", "Every day at 07:30 · next: ")
    zone = await page.evaluate("() => Intl.DateTimeFormat().resolvedOptions().timeZone")
    async with httpx.AsyncClient(
        base_url=ui_server.url, headers={"Authorization": "Bearer planner"}
    ) as h:
        stored = (await h.get("/v1/reminders")).json()["reminders"]
    assert {r["text"]: r["repeat"] for r in stored} == {
        "Bins out": {"every": "weekly", "at": "19:00", "weekday": "tuesday", "time_zone": zone},
        "Stretch": {"every": "daily", "at": "07:30", "weekday": None, "time_zone": zone},
    }
    await page.click("#lang-toggle")
    await page.wait_for_function("() => document.documentElement.lang === 'ko'")
    assert (await bins.locator(".reminder-due").inner_text()).startswith(
        "매주 화요일 19:00 · 다음: "
    )
    await page.set_viewport_size({"width": 390, "height": 844})
    found = await page.evaluate(OVERFLOWS)
    assert found["out"] == [] and found["scroll"] <= found["w"], found
    await page.locator("#reminders-panel").screenshot(path=shot("ui-reminders-recurring.png"))
    await bins.get_by_role("button", name='알림 "Bins out" 취소').click()
    await bins.wait_for(state="detached", timeout=5000)
    async with httpx.AsyncClient(
        base_url=ui_server.url, headers={"Authorization": "Bearer planner"}
    ) as h:
        left = (await h.get("/v1/reminders", params={"status": "pending"})).json()["reminders"]
    assert [r["text"] for r in left] == ["Stretch"]
