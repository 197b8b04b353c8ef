"""Preemptive generation over the real WebSocket (real VAD, Smart Turn, Whisper; the fake
LLM): the reply is requested on a pause's words while the semantic detector still waits.
Kept when the turn ends with those words; discarded when the user speaks on, and then
nothing of it reaches the client, the store, the model's history or long-term memory, and
a tool it asked for never runs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from server.turns.preemptive import words
from tests.fakes.openai_server import FakeOpenAI
from tests.mic import Mic
from tests.server_harness import ServerThread, WsClient
from tests.speech import speak, speak_fresh
from tests.turns.test_semantic_e2e import FIRST, session, settle

# the discarded start's words, then the rest of the sentence (no comma: one more pause
# would start, and discard, another)
EARLY = "Tomorrow I want to go hiking in the mountains and"
REST = "my brother is coming with us."


async def usage(server: ServerThread, user: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.get(f"/v1/usage?token={user}")).json()["usage"]


def turn_requests(llm: FakeOpenAI, since: int, word: str) -> list[dict[str, Any]]:
    """Persona-turn requests (not mem0's) whose user message has ``word``."""
    return [
        r
        for r in llm.chat_requests(mem0=False)[since:]
        if word in str(r["body"]["messages"][-1]["content"]).lower()
    ]


async def until_requested(llm: FakeOpenAI, since: int, word: str) -> dict[str, Any]:
    for _ in range(300):
        if found := turn_requests(llm, since, word):
            return found[0]
        await asyncio.sleep(0.05)
    raise TimeoutError("the model was never asked")


# Under heavy load a decode can outlast semantic.TEXT_WAIT_MS: the detector then decides on
# the audio alone, and if the end-of-turn model calls the audio finished the turn ends before
# its words are known: no held start that time. The tests then try again in a new session; a
# start that never happens fails them all the same.
ATTEMPTS = 3


async def held_start(
    server: ServerThread, llm: FakeOpenAI, user: str
) -> tuple[WsClient, Mic, dict[str, Any]] | None:
    """A session whose user says EARLY (unfinished) and pauses: (ws, the running mic, the
    model's request) once the model was asked while the detector still waits; None when
    the turn ended first (see ATTEMPTS)."""
    since = len(llm.chat_requests(mem0=False))
    mem_since = len(llm.chat_requests(mem0=True))
    ws = await session(server, user, type="semantic", eagerness="low")
    mic = Mic(ws)
    await mic.__aenter__()
    mic.say(speak(EARLY), 300)
    request = await until_requested(llm, since, "mountain")
    await settle(ws, 0.3)
    if not ws.of_type("input_audio.speech_stopped"):
        return ws, mic, request
    if not ws.of_type("response.done"):  # (settle may have read past it)
        await ws.wait_for("response.done", timeout=30)  # an ordinary turn: let it finish ...
    await mic.__aexit__(None, None, None)
    await ws.conn.close()
    for _ in range(100):  # ... with its memory write, before another attempt looks
        if any("mountain" in str(r["body"]) for r in llm.chat_requests(mem0=True)[mem_since:]):
            break
        await asyncio.sleep(0.1)
    return None


async def held_session(
    server: ServerThread, llm: FakeOpenAI, name: str, replies: list[dict[str, Any]]
) -> tuple[str, int, int, WsClient, Mic, dict[str, Any]]:
    """``held_start`` tried up to ATTEMPTS times, each with a fresh user and the fake's
    ``replies`` (queue_reply keywords) queued anew: (user, the index of this attempt's first
    turn request and mem0 request, ws, mic, the held start's request)."""
    for attempt in range(ATTEMPTS):
        if attempt:
            llm.clear()  # the replies an ordinary turn may have left
        user = f"{name}{attempt}"
        since = len(llm.chat_requests(mem0=False))
        mem_since = len(llm.chat_requests(mem0=True))
        for reply in replies:
            llm.queue_reply(**reply)
        if held := await held_start(server, llm, user):
            return (user, since, mem_since, *held)
    pytest.fail(f"no held start in {ATTEMPTS} tries")


async def test_held_start_kept_when_the_turn_ends_on_its_words(
    stt_ready: ServerThread, turn_llm: FakeOpenAI
):
    for attempt in range(ATTEMPTS):
        user = f"pre1{attempt}"
        since = len(turn_llm.chat_requests(mem0=False))
        turn_llm.queue_reply("For two, at what time?")
        # "... for two at" sounds unfinished: the detector waits (up to 2 s, eagerness high)
        ws = await session(stt_ready, user, type="semantic", eagerness="high")
        async with Mic(ws) as mic:
            mic.say(speak_fresh(FIRST), 300)
            done = await ws.wait_for("transcript.done", timeout=30)
            resp = await ws.wait_for("response.done", timeout=30)
        await ws.conn.close()
        # (server clock) the model was asked before the turn ended
        if resp["timings"]["eos_to_llm_ms"] < resp["timings"]["eos_to_turn_ms"]:
            break
    else:
        pytest.fail(f"no held start in {ATTEMPTS} tries")
    assert resp["status"] == "completed" and resp["text"] == "For two, at what time?"
    asked = turn_requests(turn_llm, since, "table")
    assert len(asked) == 1  # one request: the held start became the reply
    assert asked[0]["body"]["messages"][-1]["content"] == done["text"]
    # ... and the client heard of the turn's end after the model had the request
    stopped = ws.of_type("input_audio.speech_stopped")[0]
    assert asked[0]["t"] < stopped["_t"] < done["_t"]
    assert len(ws.of_type("response.created")) == 1
    counters = await usage(stt_ready, user)
    assert counters.get("llm_calls_preemptive_wasted", 0) == 0 and counters["llm_calls"] == 1


async def test_held_start_discarded_when_the_user_goes_on(
    stt_ready: ServerThread, turn_llm: FakeOpenAI
):
    # the held start asks for a reminder and says something: neither may ever happen
    args = {"message": "x", "in_minutes": 5}
    call = {"id": "early_1", "name": "schedule_create", "arguments": args}
    # (the last pause's greedy words may start, and discard, one more: TURN_QUICK_WORDS)
    replies = [{"text": "EARLY reply.", "tool_calls": [call]}] + [{"text": "Seven it is."}] * 2
    user, since, mem_since, ws, mic, early = await held_session(
        stt_ready, turn_llm, "pre2", replies
    )
    try:
        mic.say(speak(REST), 100)  # the user goes on
        done = await ws.wait_for("transcript.done", timeout=30)
        resp = await ws.wait_for("response.done", timeout=30)
        await settle(ws, 0.3)
    finally:
        await mic.__aexit__(None, None, None)
    sid = ws.of_type("session.created")[0]["session"]["id"]
    early_words = early["body"]["messages"][-1]["content"]
    assert "brother" not in early_words.lower() and "brother" in done["text"].lower()
    # the client saw one turn and the real reply only
    assert resp["status"] == "completed" and resp["text"] == "Seven it is."
    assert len(ws.of_type("transcript.done")) == 1 and len(ws.of_type("response.created")) == 1
    assert not ws.of_type("response.tool_call") and not ws.of_type("response.tool_result")
    assert all("EARLY" not in e.get("delta", "") for e in ws.of_type("response.text.delta"))
    # the real request's history has the final words only (no held message, no tool call)
    real = turn_requests(turn_llm, since, "brother")
    assert 1 <= len(real) <= 2
    for r in real:  # (a greedy start on other words, then the real one)
        assert [m["role"] for m in r["body"]["messages"][1:]] == ["user"]
    assert words(real[-1]["body"]["messages"][-1]["content"]) == words(done["text"])
    # stored: the final words and the reply; the tool never ran
    srv = stt_ready
    msgs = await srv.call(srv.services.store.list_messages(user, sid))
    assert [(m.role, m.content) for m in msgs] == [
        ("user", done["text"]),
        ("assistant", "Seven it is."),
    ]
    assert await srv.call(srv.services.store.list_reminders(user, "pending", 10)) == []
    # the model's history: no checkpoint of the thread ever holds the held start
    thread = ws.of_type("session.created")[0]["session"]["thread_id"]
    history = await srv.call(srv.services.agent.history(thread))
    # (a kept start holds the words as it heard them: the final ones, punctuation aside)
    assert [words(m.content) for m in history] == [words(done["text"]), "seven it is"]
    saver = srv.services.agent.graph.checkpointer

    async def checkpoints() -> list[Any]:
        return [c async for c in saver.alist({"configurable": {"thread_id": thread}})]

    kept = await srv.call(checkpoints())
    assert kept
    for c in kept:  # (the final words may have been a held start too: that one was kept)
        said = [m.content for m in c.checkpoint["channel_values"].get("messages", [])]
        assert early_words not in said
    # long-term memory learnt from the real exchange only
    for _ in range(100):
        mem0 = turn_llm.chat_requests(mem0=True)[mem_since:]
        if any("brother" in str(r["body"]["messages"]) for r in mem0):
            break
        await asyncio.sleep(0.1)
    mem0 = [str(r["body"]["messages"]) for r in turn_llm.chat_requests(mem0=True)[mem_since:]]
    assert any("brother" in m for m in mem0)
    assert not any("mountain" in m and "brother" not in m for m in mem0)
    # each discarded start cost one model call, counted as wasted
    counters = await usage(srv, user)
    assert counters["llm_calls_preemptive_wasted"] == len(real)
    assert counters["llm_calls"] == len(real) + 1
    turn_llm.clear()  # the reply left when no greedy start was discarded


async def test_held_start_discarded_by_a_text_input(stt_ready: ServerThread, turn_llm: FakeOpenAI):
    replies = [{"text": "EARLY reply."}, {"text": "Typed answer."}]
    user, since, _, ws, mic, _ = await held_session(stt_ready, turn_llm, "pre3", replies)
    try:  # held, the detector waits: the user types instead
        await ws.send({"type": "input_text", "text": "What time is it?"})
        resp = await ws.wait_for("response.done", timeout=30)
        created = ws.of_type("response.created")
    finally:
        await mic.__aexit__(None, None, None)
    await ws.conn.close()
    assert resp["status"] == "completed" and resp["text"] == "Typed answer."
    assert len(created) == 1
    # the typed turn's request: its own words only, nothing of the held start
    typed = turn_requests(turn_llm, since, "what time")
    assert [(m["role"], m["content"]) for m in typed[0]["body"]["messages"][1:]] == [
        ("user", "What time is it?")
    ]
    assert (await usage(stt_ready, user))["llm_calls_preemptive_wasted"] == 1


async def test_held_start_discarded_when_turn_detection_changes(
    stt_ready: ServerThread, turn_llm: FakeOpenAI
):
    replies = [{"text": "EARLY reply."}, {"text": "Asked again."}]
    user, since, _, ws, mic, _ = await held_session(stt_ready, turn_llm, "pre4", replies)
    try:  # held: the client switches preemption off for the session
        td = {"type": "semantic", "eagerness": "low", "preemptive": False}
        await ws.send({"type": "session.update", "session": {"turn_detection": td}})
        resp = await ws.wait_for("response.done", timeout=30)  # the turn ends as usual ...
    finally:
        await mic.__aexit__(None, None, None)
    await ws.conn.close()
    assert resp["text"] == "Asked again."  # ... and is asked anew: the held start was dropped
    assert len(ws.of_type("response.created")) == 1
    assert resp["timings"]["eos_to_llm_ms"] >= resp["timings"]["eos_to_turn_ms"]
    assert len(turn_requests(turn_llm, since, "mountain")) == 2
    assert (await usage(stt_ready, user))["llm_calls_preemptive_wasted"] == 1
