"""The studio page in a real browser: Debian's Chromium (headless, driven by Playwright) with
a fake microphone playing espeak speech and a fake camera showing a face, against the real
server (real VAD, Whisper base, face model, espeak-ng TTS, mp3 reply audio through MSE) and
the fake OpenAI server for the LLM.

Every page of every test also has each request it made checked (only this server, or
data:/blob:) and must raise no uncaught exception: see the open_studio fixture."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest

from tests.e2e.browser.conftest import (
    ARTIFACTS,
    Media,
    OpenStudio,
    RecordingProxy,
    Studio,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

SHORT_REPLY = "Foxes are quick indeed. Dogs like a nap."
# Long and slow enough (about 2.7 s of tokens) that a reply started early in the pause is
# still streaming when the turn ends on a slow or loaded machine: its held text is then
# released at once, and only the rest streams.
SPOKEN_REPLY = "Foxes are quick indeed. Dogs like a nap. Both of them enjoy a sunny afternoon."
# About a minute of speech: still playing when the looping fake microphone speaks again.
LONG_REPLY = " ".join(
    f"Part {n} of my story is about a small red boat that sails across a wide calm sea."
    for n in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
)


# Chromium's own services (not the page): component/extension updates, Google sign-in
# account listing, autofill field-type queries, network time. A page that loads anything from
# elsewhere (a CDN, web fonts, an API) shows up under another host and fails the test.
CHROMIUM_SERVICE_HOSTS = {
    "update.googleapis.com",
    "accounts.google.com",
    "content-autofill.googleapis.com",
    "clients2.google.com",
}


def host_of(recorded: str) -> str | None:
    """The host of a proxy record: an absolute URL or `CONNECT host:port`."""
    if recorded.startswith("CONNECT "):
        return recorded.split(" ", 1)[1].rsplit(":", 1)[0]
    return urlsplit(recorded).hostname


@pytest.fixture(autouse=True)
def fresh_llm(browser_llm: FakeOpenAI) -> FakeOpenAI:
    """No scripted reply or recorded request leaks from one test into the next."""
    browser_llm.clear()
    return browser_llm


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def start_session(s: Studio) -> dict:
    """Click Start (as a user would) and wait for the live session."""
    await s.page.click("#btn-start")
    await s.wait("s.sessionStatus === 'live' && s.connected", what="a live session")
    return await s.state()


async def type_message(s: Studio, text: str) -> None:
    await s.page.fill("#composer-input", text)
    await s.page.press("#composer-input", "Enter")


async def wait_streaming_text(s: Studio) -> str:
    """The text of a reply bubble while it is still streaming (before response.done)."""
    return await s.wait(
        """(() => { const li = document.querySelector('#conv-log .msg-assistant.streaming');
        const t = li && li.querySelector('.msg-text').textContent; return t || false; })()""",
        what="a reply streaming into the conversation",
    )


async def test_spoken_sentence_is_transcribed_answered_and_played(
    open_studio: OpenStudio, studio_server: ServerThread, browser_llm: FakeOpenAI
):
    # twice: a reply started early on the pause's quick words is discarded (and takes one)
    # when the final words differ
    browser_llm.queue_reply(SPOKEN_REPLY, ttft_ms=50, token_ms=200)
    browser_llm.queue_reply(SPOKEN_REPLY, ttft_ms=50, token_ms=200)
    s = await open_studio(studio_server, "speaker", mic="speech")
    await start_session(s)
    # The page turned the mic on by itself, raw (no AEC/NS/AGC), as ?rawmic=1 asks.
    mic = await s.wait("s.mic.active && s.mic", what="the microphone on")
    assert mic["applied"]["echoCancellation"] is False
    assert mic["applied"]["autoGainControl"] is False

    final = await s.wait(
        "(s.transcripts.find((t) => t.final && t.text.trim()) || false)",
        timeout_s=45,
        what="a final transcript",
    )
    heard = words(final["text"])
    assert len(heard & words("The quick brown fox jumps over the lazy dog")) >= 6, final
    # ... shown in the conversation as a finished user turn
    bubble = s.page.locator(f'#conv-log .msg-user[data-item-id="{final["itemId"]}"]')
    await bubble.wait_for()
    assert "partial" not in (await bubble.get_attribute("class"))
    assert words(await bubble.locator(".msg-text").text_content()) == heard

    streamed = await wait_streaming_text(s)
    assert 0 < len(streamed) < len(SPOKEN_REPLY)
    # ... the transcript was the user's turn the LLM answered
    asked = browser_llm.chat_requests(mem0=False)
    assert heard in [words(str(r["body"]["messages"][-1]["content"])) for r in asked]
    playing = await s.wait(
        "s.playing && s.playingResponseId", timeout_s=30, what="reply audio playing"
    )
    audio = await s.page.evaluate(
        """() => { const a = document.getElementById('reply-audio');
        return {paused: a.paused, t: a.currentTime, src: a.src}; }"""
    )
    st = await s.state()
    reply = next(r for r in st["replies"] if r["responseId"] == playing)
    assert reply["audioChunks"] > 0 and st["audioBytesReceived"] > 0
    assert audio["src"].startswith("blob:") and not audio["paused"]
    assert await s.page.is_visible("#playing-indicator")
    # The order the user saw: final transcript, then the reply text, then its audio.
    log = [e["type"] for e in st["log"]]
    assert log.index("transcript.done") < log.index("response.created")
    assert log.index("response.created") < log.index("response.text.delta")
    # The whole reply arrived and equals what the LLM produced.
    await s.wait(
        f"s.replies.some((r) => r.responseId === '{playing}' && r.text === {SPOKEN_REPLY!r})",
        what="the complete reply text",
    )


async def test_typed_message_gets_a_streamed_reply(
    open_studio: OpenStudio, studio_server: ServerThread, browser_llm: FakeOpenAI
):
    reply = "Hello there! It is nice to meet you. Shall we talk about your day?"
    browser_llm.queue_reply(reply, ttft_ms=100, token_ms=60)
    s = await open_studio(studio_server, "typer", mic="silence")
    await start_session(s)
    await type_message(s, "Hi, how are you?")
    assert await s.page.input_value("#composer-input") == ""  # sent, box cleared
    assert await s.page.text_content("#conv-log .msg-user.typed .msg-text") == "Hi, how are you?"

    streamed = await wait_streaming_text(s)
    assert 0 < len(streamed) < len(reply) and reply.startswith(streamed)
    done = await s.wait(
        "(s.replies.find((r) => r.status !== 'in_progress') || false)",
        timeout_s=30,
        what="the reply done",
    )
    assert done["status"] == "completed" and done["text"] == reply
    assert done["timings"]["ttft_ms"] is not None
    st = await s.state()
    assert st["eventCounts"]["response.text.delta"] > 3  # streamed, not in one piece
    bubble = s.page.locator("#conv-log .msg-assistant").first
    assert await bubble.locator(".msg-text").text_content() == reply
    assert await bubble.get_attribute("data-status") == "completed"
    assert "streaming" not in (await bubble.get_attribute("class"))
    # Completed means its audio was played to the end and reported as such.
    assert done["audioDone"] and done["playReason"] == "completed"
    assert done["playedMs"] >= done["audioDurationMs"] - 300
    assert {"response_id": done["responseId"], "reason": "completed"}.items() <= next(
        r for r in st["playedReports"] if r["response_id"] == done["responseId"]
    ).items()
    assert browser_llm.chat_requests(mem0=False)[0]["body"]["messages"][-1]["content"] == (
        "Hi, how are you?"
    )


async def test_reminders_are_made_listed_cancelled_and_shown_when_due(
    open_studio: OpenStudio, studio_server: ServerThread, browser_llm: FakeOpenAI
):
    s = await open_studio(studio_server, "forgetful", mic="silence")
    await start_session(s)
    page = s.page
    await page.click("#reminders-details > summary")
    await page.locator("#reminder-list li.muted").wait_for(timeout=5000)  # none yet
    # One for later: listed as pending, then cancelled from the list.
    await page.fill("#reminder-text", "Call the bank")
    await page.fill("#reminder-minutes", "30")
    await page.click("#reminder-add")
    later = page.locator("#reminder-list .reminder-item", has_text="Call the bank")
    await later.wait_for(timeout=5000)
    assert await page.input_value("#reminder-text") == ""  # added, box cleared
    ARTIFACTS.mkdir(exist_ok=True)
    await page.locator("#reminders-panel").screenshot(path=str(ARTIFACTS / "reminders.png"))
    await later.get_by_role("button", name='Cancel the reminder "Call the bank"').click()
    await later.wait_for(state="detached", timeout=5000)
    # One due in a moment: it comes back as a `reminder` event into the conversation.
    await page.fill("#reminder-text", "Water the plants")
    await page.fill("#reminder-minutes", "0.01")
    await page.click("#reminder-add")
    got = await s.wait("(s.reminders[0] || false)", timeout_s=15, what="the reminder event")
    assert got["text"] == "Water the plants"
    line = page.locator("#conv-log .msg-system", has_text="Water the plants")
    await line.wait_for(timeout=5000)
    assert "Reminder: Water the plants" in (await line.text_content() or "")
    await page.locator("#reminder-list li.muted").wait_for(timeout=5000)  # none pending
    async with httpx.AsyncClient(base_url=studio_server.url) as http:
        r = await http.get("/v1/reminders", headers={"Authorization": "Bearer forgetful"})
    assert {x["text"]: x["status"] for x in r.json()["reminders"]} == {
        "Call the bank": "cancelled",
        "Water the plants": "delivered",
    }


async def test_tool_activity_is_shown_in_words_and_the_memory_panel_controls_memories(
    open_studio: OpenStudio, studio_server: ServerThread, browser_llm: FakeOpenAI
):
    memory = studio_server.services.memory
    await studio_server.call(memory.add("rememberer", "Likes green tea", "preference"))
    s = await open_studio(studio_server, "rememberer", mic="silence")
    await start_session(s)
    page = s.page
    browser_llm.queue_reply(
        tool_calls=[
            {
                "name": "add_memory",
                "arguments": {"content": "Has a cat named Nabi", "category": "relationship"},
            },
            {"name": "schedule_create", "arguments": {"message": "Feed Nabi", "in_minutes": 30}},
        ]
    )
    browser_llm.queue_reply("Noted, and I'll remind you.")
    await type_message(s, "Can you remember my cat Nabi and remind me to feed her soon?")
    line = page.locator("#conv-log .msg-system", has_text="Remembered: Has a cat named Nabi")
    await line.wait_for(timeout=15000)
    reminder = page.locator("#conv-log .msg-system", has_text="Reminder set for")
    await reminder.wait_for(timeout=5000)
    due = await s.wait(
        "(s.tools.find((e) => e.name === 'schedule_create' && e.type === 'response.tool_result') || false)",
        what="the schedule_create result",
    )
    local_time = await page.evaluate(
        "(d) => new Date(d).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', hour12: false})",
        due["data"]["due_at"],
    )
    assert f"Reminder set for {local_time}: Feed Nabi" in (await reminder.text_content() or "")
    # the memory panel lists both memories; forgetting one removes it for real
    await page.click("#memories-details > summary")
    items = page.locator("#memory-list .memory-item")
    await page.locator("#memory-list .memory-item", has_text="Has a cat named Nabi").wait_for(
        timeout=5000
    )
    assert await items.count() == 2
    ARTIFACTS.mkdir(exist_ok=True)
    await page.locator("#memory-panel").screenshot(path=str(ARTIFACTS / "memory.png"))
    tea = page.locator("#memory-list .memory-item", has_text="Likes green tea")
    await tea.get_by_role("button", name='Forget "Likes green tea"').click()
    await tea.wait_for(state="detached", timeout=5000)
    left = await studio_server.call(memory.list("rememberer", 10))
    assert [m.memory for m in left] == ["Has a cat named Nabi"]
    page.once("dialog", lambda d: d.accept())
    await page.click("#memory-clear")
    await page.locator("#memory-list li.muted").wait_for(timeout=5000)
    assert await studio_server.call(memory.list("rememberer", 10)) == []


async def test_camera_frames_reach_server_and_update_perception_panel(
    open_studio: OpenStudio, studio_server: ServerThread, browser_llm: FakeOpenAI
):
    s = await open_studio(studio_server, "watcher", mic="silence")
    await start_session(s)
    assert await s.page.text_content('[data-perc="emotion"]') == "—"
    await s.page.click("#btn-camera")
    await s.wait("s.camera.active", what="the camera on")
    assert await s.page.is_visible("#camera-video")
    face = await s.wait(
        "s.perception.faceCount >= 3 && s.perception.face", timeout_s=30, what="face analysis"
    )
    st = await s.state()
    assert st["sent"]["cameraFrames"] >= 3
    # The server analysed the astronaut's smiling face from the page's JPEG frames.
    top = max(face["emotion_scores"], key=face["emotion_scores"].get)
    assert face["emotion"] == top and top.startswith("happ"), face
    assert face["gaze_on_screen"] in (True, 1) or face["gaze_on_screen"] > 0.5
    for k in ("yaw", "pitch", "roll"):
        assert isinstance(face["head_pose"][k], int | float)
    # The panel shows it.
    assert await s.page.text_content('[data-perc="emotion"]') == "happy"
    # The head pose in words, the angles on hover (no engineer units in the main view).
    head = await s.page.text_content('[data-perc="head"]')
    assert head in ("Facing the screen", "Turned to one side", "Looking up", "Looking down")
    assert "yaw" in await s.page.get_attribute('[data-perc="head"]', "title")
    # Emotions as the report counts them: the share of the readings each was the main one
    # (the astronaut always smiles), this moment's scores on hover.
    scores = await s.page.locator('[data-perc="scores"] li:not(.muted)').all_text_contents()
    assert scores[0].startswith("happy") and scores[0].endswith("%"), scores
    assert int(scores[0].removeprefix("happy").removesuffix("%")) >= 50, scores
    hover = await s.page.get_attribute('[data-perc="scores"]', "title")
    assert hover is not None and hover.startswith("happy ") and hover.count("%") >= 3
    await s.wait(
        "document.querySelector('[data-perc=\"summary-emotion\"]').textContent.includes('happy')",
        what="the emotion chart summary",
    )

    # A live session to look at: a typed turn answered and spoken, the face in view.
    browser_llm.queue_reply("You look happy today! What made you smile?", token_ms=40)
    await type_message(s, "Do I look happy?")
    await s.wait("s.playing", timeout_s=30, what="reply audio playing")
    await s.page.wait_for_timeout(600)  # a few more face events and chart redraws
    shot = ARTIFACTS / "studio-live.png"
    ARTIFACTS.mkdir(exist_ok=True)
    await s.page.screenshot(path=str(shot), full_page=True)
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] >= 600 and img.shape[1] >= 1000
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    assert float(gray.std()) > 15, "screenshot is (nearly) blank"
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 200, f"screenshot has only {len(colours)} colours"
    # The camera preview inside it shows the picture, not a black box.
    preview = cv2.imdecode(
        np.frombuffer(await s.page.locator("#camera-video").screenshot(), np.uint8),
        cv2.IMREAD_COLOR,
    )
    assert float(preview.std()) > 20 and float(preview.mean()) > 30
    print(f"screenshot: {shot}")

    # End: the readings do not stay behind, and "ended" is not an error.
    await s.page.click("#btn-end")
    await s.wait("s.sessionStatus === 'ended'", what="the session ended")
    for k in ("emotion", "concentration", "gaze", "head", "voice"):
        assert await s.page.text_content(f'[data-perc="{k}"]') == "—", k
    assert await s.page.text_content("#conn-text") == "Session ended"


async def test_speech_during_reply_playback_barges_in(
    open_studio: OpenStudio, studio_server: ServerThread, browser_llm: FakeOpenAI, media: Media
):
    browser_llm.queue_reply(LONG_REPLY, ttft_ms=50, token_ms=15)
    s = await open_studio(studio_server, "interrupter", mic="speech")
    await s.page.evaluate("() => window.studio.setMuted(true)")  # muted from the start
    created = await start_session(s)
    await s.wait("s.mic.active && s.mic.muted", what="the microphone on, muted")
    await type_message(s, "Tell me a long story, please.")
    rid = await s.wait("s.playing && s.playingResponseId", timeout_s=30, what="the story playing")
    await s.page.wait_for_timeout(1000)
    before = await s.state()
    assert before["playing"] and before["playingResponseId"] == rid
    assert before["eventCounts"].get("input_audio.speech_started") is None
    assert before["ducked"] is False

    # The user starts talking over the story: the looping fake mic speaks within one period.
    await s.page.evaluate("() => window.studio.setMuted(false)")
    report = await s.wait(
        f"(s.playedReports.find((r) => r.response_id === '{rid}') || false)",
        timeout_s=media.speech_period_s + 15,
        what="playback stopped and reported",
    )
    # Right when playback stopped: nothing plays, and the user was heard speaking. The page
    # only lowered the volume at speech_started; the server's cancel stopped it.
    # One look at the page (state and audio element together): the user's words become the
    # next turn, whose reply may start playing a moment later on a loaded host.
    now = await s.page.evaluate(
        """() => ({...JSON.parse(JSON.stringify(window.studio.state)),
                   paused: document.getElementById('reply-audio').paused})"""
    )
    assert report["reason"] == "barge_in", report
    assert now["eventCounts"]["response.done"] >= 1
    assert now["playingResponseId"] != rid
    assert now["eventCounts"]["input_audio.speech_started"] >= 1
    # Nothing plays, or only a newer reply does: never the story that was cut.
    assert (not now["playing"] and now["paused"]) or now["playingResponseId"] not in (None, rid)
    # The server cancelled the reply, and the page marks it so.
    reply = await s.wait(
        f"(s.replies.find((r) => r.responseId === '{rid}' && r.status !== 'in_progress') || false)",
        timeout_s=15,
        what="the reply's final status",
    )
    assert reply["status"] == "cancelled"
    bubble = s.page.locator(f'#conv-log .msg-assistant[data-response-id="{rid}"]')
    assert await bubble.get_attribute("data-status") == "cancelled"
    assert "cancelled" in (await bubble.get_attribute("class"))
    assert await bubble.locator(".msg-meta").text_content() != ""
    # Only part of the story was heard: more than before the user spoke, and no more than
    # until the mic spoke (within one loop of the speech file after unmuting).
    assert before["playedMs"] <= report["played_ms"]
    assert report["played_ms"] < before["playedMs"] + (media.speech_period_s + 3) * 1000
    if reply["audioDurationMs"]:
        assert report["played_ms"] < reply["audioDurationMs"] - 1000
    # ... and the stored assistant turn keeps only what was played (its first words).
    async with httpx.AsyncClient(base_url=studio_server.url) as http:
        r = await http.get(
            f"/v1/sessions/{created['sessionId']}/messages",
            headers={"Authorization": "Bearer interrupter"},
        )
    msgs = [m for m in r.json()["messages"] if m["role"] == "assistant"]
    assert msgs and msgs[0]["interrupted"] is True
    heard = msgs[0]["content"]
    assert 0 < len(heard) < len(LONG_REPLY) / 2 and LONG_REPLY.startswith(heard.rstrip(".…")), heard
    # The page shows the same heard part as history, not the whole story that was sent.
    await s.wait(
        f"(s.replies.find((r) => r.responseId === '{rid}') || {{}}).heard",
        timeout_s=10,
        what="the heard text shown",
    )
    assert await bubble.locator(".msg-text").text_content() == heard


async def test_with_barge_in_off_speech_over_a_reply_lets_it_play_to_its_end(
    open_studio: OpenStudio, studio_server: ServerThread, browser_llm: FakeOpenAI, media: Media
):
    """ "Let me interrupt it" off (turn_detection.barge_in false): the user talks over the
    reply, the page keeps it at full volume, it plays to its end and completes, and the
    user's words are answered after it."""
    story = ". ".join(LONG_REPLY.split(". ")[:3]) + "."  # about 15 s: outlasts one mic loop
    browser_llm.queue_reply(story, ttft_ms=50, token_ms=15)
    browser_llm.queue_reply(SHORT_REPLY)
    s = await open_studio(studio_server, "no-interrupting", mic="speech")
    await s.page.evaluate("() => window.studio.setMuted(true)")
    await s.page.click("#settings-details > summary")
    await s.page.uncheck("#set-barge-in")
    await start_session(s)
    await s.wait("s.turnDetection && s.turnDetection.barge_in === false", what="barge-in off")
    await s.page.evaluate(
        """() => { window.order = [];
        window.studio.onEvent((m) => window.order.push([m.type, m.response_id || m.item_id])); }"""
    )
    await s.wait("s.mic.active && s.mic.muted", what="the microphone on, muted")
    await type_message(s, "Tell me a story, please.")
    rid = await s.wait("s.playing && s.playingResponseId", timeout_s=30, what="the story playing")
    await s.page.evaluate("() => window.studio.setMuted(false)")
    # the user talks over it (the looping fake mic speaks within one period) ...
    over = await s.wait(
        f"s.userSpeaking && s.playingResponseId === '{rid}' && s",
        timeout_s=media.speech_period_s + 10,
        what="the user speaking over the story",
    )
    assert over["ducked"] is False  # it plays on at full volume
    # ... and it plays to its end: played in full, completed, stored whole
    report = await s.wait(
        f"(s.playedReports.find((r) => r.response_id === '{rid}' && r.reason) || false)",
        timeout_s=40,
        what="the story's last playback report",
    )
    assert report["reason"] == "completed", report
    reply = await s.wait(
        f"(s.replies.find((r) => r.responseId === '{rid}' && r.status !== 'in_progress') || false)",
        what="the story's final status",
    )
    assert reply["status"] == "completed"
    # the user's words became the next turn, answered after the story's response.done
    await s.wait(
        f"s.replies.some((r) => r.responseId !== '{rid}' && r.status === 'completed')",
        timeout_s=30,
        what="the reply to the words said over the story",
    )
    order = await s.page.evaluate("() => window.order")
    types = [t for t, _ in order]
    done = order.index(["response.done", rid])
    assert "input_audio.speech_started" in types[:done], order  # spoken over the story
    assert "transcript.done" not in types[:done], order  # its turn came after the story
    assert "transcript.done" in types[done:], order
    async with httpx.AsyncClient(base_url=studio_server.url) as http:
        sid = await s.state(".sessionId")
        r = await http.get(
            f"/v1/sessions/{sid}/messages", headers={"Authorization": "Bearer no-interrupting"}
        )
    told = [m for m in r.json()["messages"] if m["role"] == "assistant"]
    assert told[0]["content"] == story and told[0]["interrupted"] is False


async def test_page_loads_nothing_from_outside_the_server(
    open_studio: OpenStudio, studio_server: ServerThread, browser_llm: FakeOpenAI
):
    """Two recorders: Playwright's request and websocket events (attributed to the page),
    and a proxy every connection of the browser goes through (it also sees what Playwright
    does not, such as the AudioWorklet module, but also the browser's own services)."""
    browser_llm.queue_reply(SHORT_REPLY)
    here = f"127.0.0.1:{studio_server.port}"
    proxy = RecordingProxy(here).start()
    try:
        s = await open_studio(studio_server, "offline", mic="speech", proxy=proxy)
        failed: list[str] = []
        s.page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
        s.page.on(
            "response",
            lambda r: failed.append(f"{r.url} {r.status}") if r.status >= 400 else None,
        )
        await start_session(s)
        # Use everything: mic (on by itself), camera, a typed turn with audio, settings,
        # history, the language switch (both ways), then end the session.
        await s.page.click("#btn-camera")
        await type_message(s, "Hello!")
        await s.wait("s.audioChunksReceived > 0 && s.perception.faceCount > 0", timeout_s=30)
        await s.page.click("#settings-details summary")
        await s.page.click("#history-details summary")
        await s.page.click("#lang-toggle")
        await s.page.click("#lang-toggle")
        await s.wait("s.playedReports.length > 0", timeout_s=30, what="the reply played")
        await s.page.click("#btn-end")
        await s.wait("s.sessionStatus === 'ended'", timeout_s=20, what="the session ended")
        await s.page.wait_for_load_state("networkidle")
        # the report link opens the HTML report, with the token a plain link cannot send
        href = await s.page.get_attribute("#report-link a", "href")
        assert href is not None and href.split("?")[0].endswith("/report.html"), href
        report = await s.page.request.get(f"http://{here}{href}")
        assert report.status == 200 and "<svg" in await report.text()
        # The page polls the server's status: close it before its proxy goes away.
        await s.page.close()
    finally:
        proxy.stop()

    # What the page asked for (Playwright): this server only, all of it answered.
    local = f"http://{here}/"
    assert s.outside_requests() == []
    paths = {u.removeprefix(local).split("?")[0] for u in s.requests}
    for expected in (
        "",
        "app.js",
        "style.css",
        "i18n.js",
        "js/mic.js",
        "v1/personas",
        "health/details",
    ):
        assert expected in paths, (expected, sorted(paths))
    assert [u.split("?")[0] for u in s.websockets] == [f"ws://{here}/v1/ws"]
    assert failed == [], failed

    # What the browser sent over the network (proxy): the page's requests, the worklet module
    # Playwright does not report, the WebSocket tunnel; anything else is Chromium's own.
    seen = set(proxy.seen)
    assert set(s.requests) <= seen, set(s.requests) - seen
    assert f"{local}audio-worklet.js" in seen
    assert f"CONNECT {here}" in seen  # the WebSocket
    elsewhere = [u for u in proxy.seen if host_of(u) != "127.0.0.1"]
    assert {host_of(u) for u in elsewhere} <= CHROMIUM_SERVICE_HOSTS, elsewhere
    assert [u for u in proxy.seen if host_of(u) == "127.0.0.1" and here not in u] == []
    print(f"{len(s.requests)} page requests, all local: {sorted(paths)}")
    print(f"browser's own (refused by the proxy): {sorted({host_of(u) for u in elsewhere})}")
