"""The acting agent over a real server: the fake model streams real `tool_calls` deltas, the
server runs the tools (reminders in the store, memories in real mem0 + embedded Qdrant),
reports them as events, stores them in the transcript, and streams the answer."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.e2e.test_screen import SCREEN, ui_jpeg
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.server_harness import ServerThread, WsClient, open_ws, text_turn

Factory = Callable[..., ServerThread]


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}"}


def call(name: str, call_id: str = "call_1", **args: Any) -> dict[str, Any]:
    return {"id": call_id, "name": name, "arguments": args}


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool results the model read in this request, in order."""
    return [json.loads(m["content"]) for m in request["body"]["messages"] if m["role"] == "tool"]


async def connect(srv: ServerThread, user: str) -> tuple[WsClient, dict[str, Any]]:
    ws = await open_ws(srv, persona="emma", token=user)
    return ws, (await ws.wait_for("session.created"))["session"]


async def stored(srv: ServerThread, user: str, session_id: str) -> list[tuple[str, str]]:
    rows = await srv.call(srv.services.store.list_messages(user, session_id))
    return [(m.role, m.content) for m in rows]


async def test_reminder_by_tool_is_listed_by_rest_and_delivered_when_due(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, reminder_check_s=60.0)
    ws, sess = await connect(srv, "tina")
    llm.queue_reply(tool_calls=[call("schedule_create", message="Stretch", in_minutes=10)])
    llm.queue_reply("Okay, in ten minutes.")
    deltas, done = await text_turn(ws, "Remind me to stretch in 10 minutes")
    assert done["status"] == "completed" and "".join(deltas) == "Okay, in ten minutes."
    rid = done["response_id"]
    tool_call = ws.of_type("response.tool_call")[0]
    assert tool_call == {
        **tool_call,
        "response_id": rid,
        "call_id": "call_1",
        "name": "schedule_create",
        "arguments": {"message": "Stretch", "in_minutes": 10},
    }
    result = ws.of_type("response.tool_result")[0]
    assert result["call_id"] == "call_1" and result["ok"] is True
    assert result["summary"].startswith("reminder set for ") and "Stretch" in result["summary"]
    async with httpx.AsyncClient(base_url=srv.url) as http:
        listed = (await http.get("/v1/reminders", headers=auth("tina"))).json()["reminders"]
        other = (await http.get("/v1/reminders", headers=auth("ulla"))).json()["reminders"]
    assert [r["text"] for r in listed] == ["Stretch"] and other == []
    due = datetime.fromisoformat(listed[0]["due_at"])
    left = (due - datetime.fromisoformat(listed[0]["created_at"])).total_seconds()
    assert 595 <= left <= 605
    assert result["data"]["schedule_id"] == listed[0]["id"]
    # the model read the reminder's id and time, and answered after it
    first, second = llm.chat_requests(mem0=False)[-2:]
    assert tool_results(second) == [
        {"schedule_id": listed[0]["id"], "message": "Stretch", "trigger_at": listed[0]["due_at"]}
    ]
    assert "schedule_create" in [t["function"]["name"] for t in first["body"]["tools"]]
    # the transcript holds the tool's effect between the user and the reply
    assert await stored(srv, "tina", sess["id"]) == [
        ("user", "Remind me to stretch in 10 minutes"),
        ("system", f"[tool schedule_create] {result['summary']}"),
        ("assistant", "Okay, in ten minutes."),
    ]
    # a short one is delivered to the session when due, like a REST-made reminder
    llm.queue_reply(tool_calls=[call("schedule_create", message="Tea", in_minutes=0.01)])
    llm.queue_reply("Soon.")
    t0 = time.monotonic()
    await text_turn(ws, "Remind me about the tea right away")
    ev = await ws.wait_for("reminder", timeout=10)
    assert ev["text"] == "Tea" and time.monotonic() - t0 < 5
    # it is marked delivered once the socket took it (acknowledged by the write, so a moment
    # after the event): then it is no longer pending
    async with httpx.AsyncClient(base_url=srv.url) as http:
        for _ in range(50):
            got = await http.get("/v1/reminders?status=pending", headers=auth("tina"))
            if [r["text"] for r in got.json()["reminders"]] == ["Stretch"]:
                break
            await asyncio.sleep(0.05)
    # schedule_list and schedule_cancel see and change the same store
    llm.queue_reply(tool_calls=[call("schedule_list")])
    llm.queue_reply(tool_calls=[call("schedule_cancel", schedule_id=listed[0]["id"])])
    llm.queue_reply("Cancelled.")
    await text_turn(ws, "Cancel my stretch reminder")
    reads = llm.chat_requests(mem0=False)[-2:]
    assert tool_results(reads[0])[-1]["schedules"] == [
        {"schedule_id": listed[0]["id"], "message": "Stretch", "trigger_at": listed[0]["due_at"]}
    ]
    assert tool_results(reads[1])[-1] == {"cancelled": listed[0]["id"]}
    async with httpx.AsyncClient(base_url=srv.url) as http:
        got = (await http.get(f"/v1/reminders/{listed[0]['id']}", headers=auth("tina"))).json()
    assert got["status"] == "cancelled"


async def test_recurring_reminder_by_tool_in_the_users_time_zone(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm)
    ws, _ = await connect(srv, "rita")
    async with httpx.AsyncClient(base_url=srv.url, headers=auth("rita")) as http:
        assert (await http.put("/v1/settings", json={"timezone": "Asia/Seoul"})).status_code == 200
    weekly = call("schedule_create", message="Piano", repeat="weekly", at="18:00", weekday="friday")
    bad = call("schedule_create", "call_2", message="Nope", repeat="daily", in_minutes=5)
    llm.queue_reply(tool_calls=[weekly, bad])
    llm.queue_reply("Every Friday at six.")
    await text_turn(ws, "Remind me about piano every Friday at 6 pm")
    ok, refused = ws.of_type("response.tool_result")[:2]
    assert ok["ok"] is True and refused["ok"] is False
    assert ok["summary"].startswith("reminder set every week on fridays at 18:00 (Asia/Seoul)")
    async with httpx.AsyncClient(base_url=srv.url) as http:
        listed = (await http.get("/v1/reminders", headers=auth("rita"))).json()["reminders"]
    assert [(r["text"], r["repeat"]) for r in listed] == [
        (
            "Piano",
            {"every": "weekly", "at": "18:00", "weekday": "friday", "time_zone": "Asia/Seoul"},
        )
    ]
    local = datetime.fromisoformat(listed[0]["due_at"]).astimezone(ZoneInfo("Asia/Seoul"))
    assert (local.weekday(), local.strftime("%H:%M")) == (4, "18:00")
    # what the model read: the rule and the first occurrence; the refusal says why
    read = tool_results(llm.chat_requests(mem0=False)[-1])
    assert read[0] == {
        "schedule_id": listed[0]["id"],
        "message": "Piano",
        "trigger_at": listed[0]["due_at"],
        "repeat": listed[0]["repeat"],
    }
    assert "exactly one of in_minutes, trigger_at or repeat" in json.dumps(read[1])


async def test_schedule_refusals_reach_the_model_and_the_turn_completes(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, reminders_max_pending=1)
    ws, _ = await connect(srv, "vera")
    llm.queue_reply(
        tool_calls=[
            call(
                "schedule_create",
                "c1",
                message="Both",
                in_minutes=5,
                trigger_at="2030-01-01T00:00:00Z",
            ),
            call("schedule_create", "c2", message="Naive", trigger_at="2030-01-01T00:00:00"),
            call("schedule_create", "c3", message="Ok", in_minutes=5),
            call("schedule_create", "c4", message="Over the limit", in_minutes=6),
            call("schedule_cancel", "c5", schedule_id="not-mine"),
            call("no_such_tool", "c6"),
        ]
    )
    llm.queue_reply("Some of that did not work.")
    done = (await text_turn(ws, "Lots of reminders"))[1]
    assert done["status"] == "completed"
    oks = [r["ok"] for r in ws.of_type("response.tool_result")]
    assert oks == [False, False, True, False, False, False]
    errors = [r.get("error", "") for r in tool_results(llm.chat_requests(mem0=False)[-1])]
    assert "exactly one of in_minutes, trigger_at or repeat" in errors[0]
    assert "timezone" in errors[1].lower() or "time zone" in errors[1].lower()
    assert "REMINDERS_MAX_PENDING" in errors[3]
    assert "No such reminder" in errors[4]
    assert "no tool named 'no_such_tool'" in errors[5]


async def test_tool_schemas_are_sent_and_a_plain_turn_costs_one_call(
    server: ServerThread, llm: FakeOpenAI
) -> None:
    ws, _ = await connect(server, "walt")
    llm.queue_reply("Just talking.")
    await text_turn(ws, "hello")
    calls = llm.chat_requests(mem0=False)
    assert len(calls) == 1 and calls[0]["stream"] is True
    names = {t["function"]["name"] for t in calls[0]["body"]["tools"]}
    assert names == {
        "search_memory",
        "add_memory",
        "update_memory",
        "delete_memory",
        "schedule_create",
        "schedule_list",
        "schedule_cancel",
        "get_screen_context",
        "stay_silent",
    }
    assert ws.of_type("response.tool_call") == []


async def test_stay_silent_ends_the_turn_with_no_text_and_no_audio(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, default_output_audio="pcm16", tts_provider="espeak")
    ws, sess = await connect(srv, "xena")
    llm.queue_reply(tool_calls=[call("stay_silent", reason="they are talking to someone else")])
    _, done = await text_turn(ws, "Honey, where are my keys?")
    assert done["status"] == "completed" and done["text"] == ""
    assert done["silent"] is True and done["silent_reason"] == "they are talking to someone else"
    assert ws.of_type("response.text.delta") == [] and ws.binary == []
    assert len(llm.chat_requests(mem0=False)) == 1  # no second call after the decision
    assert await stored(srv, "xena", sess["id"]) == [
        ("user", "Honey, where are my keys?"),
        ("system", "[tool stay_silent] stayed silent: they are talking to someone else"),
    ]
    # the next turn is answered (and spoken) normally
    llm.queue_reply("Hi again.")
    _, done = await text_turn(ws, "Sorry, that was for my husband.")
    assert done["text"] == "Hi again." and "silent" not in done


async def test_endpoint_without_tools_falls_back_once_and_is_remembered(
    server: ServerThread, llm: FakeOpenAI
) -> None:
    llm.reject_tools = True
    ws, _ = await connect(server, "yuri")
    llm.queue_reply("Answered without tools.")
    _, done = await text_turn(ws, "hello")
    assert done["status"] == "completed" and done["text"] == "Answered without tools."
    assert ws.of_type("error") == []
    first, retry = llm.chat_requests(mem0=False)
    assert first["status"] == 400 and "tools" in first["body"]
    assert retry["status"] == 200 and "tools" not in retry["body"]
    llm.queue_reply("Still fine.")
    _, done = await text_turn(ws, "again")
    assert done["text"] == "Still fine."
    assert len(llm.chat_requests(mem0=False)) == 3  # remembered: no second rejected try
    assert "tools" not in llm.chat_requests(mem0=False)[-1]["body"]
    # the system prompt no longer offers tools either
    assert (
        "You can act with tools"
        not in llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]
    )


async def test_tools_off_sends_no_tools(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, llm_tools="off")
    ws, _ = await connect(srv, "zack")
    llm.queue_reply("No tools here.")
    assert (await text_turn(ws, "hi"))[1]["text"] == "No tools here."
    assert "tools" not in llm.chat_requests(mem0=False)[0]["body"]


async def test_round_limit_forces_an_answer(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, agent_max_tool_rounds=2)
    ws, _ = await connect(srv, "abby")
    for i in range(2):
        llm.queue_reply(tool_calls=[call("schedule_list", f"c{i}")])
    llm.queue_reply("Done looking.", tool_calls=[call("schedule_list", "c9")])
    _, done = await text_turn(ws, "check my reminders forever")
    assert done["text"] == "Done looking."
    calls = llm.chat_requests(mem0=False)
    assert len(calls) == 3 and calls[-1]["body"]["tool_choice"] == "none"
    assert len(ws.of_type("response.tool_call")) == 2  # the third round's call never ran
    # the thread stays valid for the next turn (no unanswered tool call in the history)
    llm.queue_reply("Next.")
    assert (await text_turn(ws, "ok"))[1]["text"] == "Next."


async def test_barge_in_during_a_tool_keeps_finished_effects_and_never_starts_the_rest(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    """Three calls in one round: a reminder, a slow screen look, another reminder. The user
    cancels while the look runs: the first reminder stays (stored, reported in the
    transcript and in the thread's history), the look finishes and is recorded, the last
    reminder never runs."""
    srv = server_factory(
        llm,
        vlm_base_url=llm.base_url,
        vlm_api_key="k",
        vlm_model="fake-vlm",
        vlm_min_interval_s=0.0,
        vision_wait_s=1.5,
    )
    ws, sess = await connect(srv, "beth")

    def reply(body: dict[str, Any]) -> Any:
        if any(isinstance(m.get("content"), list) for m in body["messages"]):
            return Reply("A slow screen.", ttft_ms=1000)  # the VLM
        if body["messages"][-1]["role"] == "user":
            return Reply(
                tool_calls=[
                    call("schedule_create", "c1", message="First", in_minutes=30),
                    call("get_screen_context", "c2"),
                    call("schedule_create", "c3", message="Never", in_minutes=30),
                ]
            )
        return "Okay."

    llm.set_default(reply)
    await ws.send_raw(SCREEN + ui_jpeg(1))
    await ws.send({"type": "input_text", "text": "remind me twice and look"})
    await ws.wait_for("response.tool_call", call_id="c2")
    await ws.send({"type": "response.cancel"})
    done = await ws.wait_for("response.done")
    assert done["status"] == "cancelled"
    results = {r["call_id"]: r for r in ws.of_type("response.tool_result")}
    assert set(results) == {"c1", "c2"} and results["c1"]["ok"] is True
    assert [e["call_id"] for e in ws.of_type("response.tool_call")] == ["c1", "c2"]
    rows = await srv.call(srv.services.store.list_reminders("beth"))
    assert [r.text for r in rows] == ["First"]
    lines = await stored(srv, "beth", sess["id"])
    assert lines[0] == ("user", "remind me twice and look")
    assert lines[1] == ("system", f"[tool schedule_create] {results['c1']['summary']}")
    assert lines[2][0] == "system" and lines[2][1].startswith("[tool get_screen_context]")
    # the thread continues: the next request carries the finished calls with their results,
    # and not the call that never ran
    llm.set_default(None)
    llm.queue_reply("Back.")
    assert (await text_turn(ws, "sorry, go on"))[1]["text"] == "Back."
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    assert [m["role"] for m in prompt[1:]] == ["user", "assistant", "tool", "tool", "user"]
    assert [c["id"] for c in prompt[2]["tool_calls"]] == ["c1", "c2"]
    assert [m["tool_call_id"] for m in prompt[3:5]] == ["c1", "c2"]


def memory_ids_in(request: dict[str, Any]) -> list[str]:
    """The memory ids the model read in search_memory results."""
    return [m["memory_id"] for r in tool_results(request) for m in r.get("memories", [])]


async def test_moving_from_seoul_to_busan_updates_the_seoul_memory(
    server: ServerThread, llm: FakeOpenAI
) -> None:
    memory = server.services.memory
    seoul = await server.call(memory.add("jin", "Jin lives in Seoul", "location"))
    await server.call(memory.add("jin", "Jin has a dog named Bori", "relationship"))
    ws, sess = await connect(server, "jin")

    def model(body: dict[str, Any]) -> Any:
        """Search, then update the memory the search returned that mentions Seoul."""
        last = body["messages"][-1]
        if last["role"] == "user":
            return Reply(tool_calls=[call("search_memory", "s1", query="where Jin lives Seoul")])
        if last.get("tool_call_id") == "s1":
            found = json.loads(last["content"])["memories"]
            target = next(m["memory_id"] for m in found if "Seoul" in m["content"])
            return Reply(
                tool_calls=[
                    call("update_memory", "u1", memory_id=target, content="Jin lives in Busan")
                ]
            )
        return "Busan, nice!"

    llm.set_default(model)
    _, done = await text_turn(ws, "I moved from Seoul to Busan")
    assert done["text"] == "Busan, nice!"
    results = ws.of_type("response.tool_result")
    assert [(r["call_id"], r["ok"]) for r in results] == [("s1", True), ("u1", True)]
    assert results[1]["summary"] == "memory updated: Jin lives in Busan"
    assert results[1]["data"]["memory_id"] == seoul
    hits = await server.call(memory.search("jin", "where does Jin live"))
    texts = [h.memory for h in hits]
    assert "Jin lives in Busan" in texts and not any("Seoul" in t for t in texts)
    assert (await server.call(memory.find("jin", seoul))).memory == "Jin lives in Busan"
    lines = await stored(server, "jin", sess["id"])
    assert ("system", "[tool update_memory] memory updated: Jin lives in Busan") in lines


async def test_update_or_delete_of_an_id_not_read_in_the_turn_is_refused(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, memory_search_limit=1)
    memory = srv.services.memory
    keep = await srv.call(memory.add("kim", "Kim's favourite food is kimchi", "preference"))
    other = await srv.call(memory.add("lee", "Lee's password hint is blue", "personal_info"))
    ws, _ = await connect(srv, "kim")
    # the id is real and Kim's, but nothing read it in this turn (the automatic search
    # before the turn found another memory): refused; so is another user's id
    await srv.call(memory.add("kim", "Kim walks every morning", "hobby"))
    llm.queue_reply(
        tool_calls=[
            call("update_memory", "u1", memory_id=keep, content="Kim hates kimchi"),
            call("delete_memory", "d1", memory_id=keep),
            call("delete_memory", "d2", memory_id=other),
        ]
    )
    llm.queue_reply("I should look first.")
    _, done = await text_turn(ws, "Do I walk every morning?")
    assert done["status"] == "completed"
    first = llm.chat_requests(mem0=False)[-2]
    listed = first["body"]["messages"][0]["content"]
    assert keep not in listed  # the refused id was not among the memories shown
    results = ws.of_type("response.tool_result")
    assert [r["ok"] for r in results] == [False, False, False]
    errors = [r["error"] for r in tool_results(llm.chat_requests(mem0=False)[-1])]
    assert all("Call search_memory first" in e for e in errors)
    assert (await srv.call(memory.find("kim", keep))).memory == "Kim's favourite food is kimchi"
    assert (await srv.call(memory.find("lee", other))).memory == "Lee's password hint is blue"

    # an id the automatic search listed in the prompt may be forgotten in the same turn, and
    # forgetting is consequential: the user is asked first (no request went out above, for
    # calls refused anyway). Rejected: kept; approved: forgotten.
    def model(body: dict[str, Any]) -> Any:
        if body["messages"][-1]["role"] != "user":
            return "Okay."
        shown = re.findall(r"- \[(\w[\w-]*)\] (.*)", body["messages"][0]["content"])
        target = next(i for i, text in shown if "walks" in text)
        return Reply(tool_calls=[call("delete_memory", "d3", memory_id=target)])

    assert ws.of_type("approval.request") == []
    llm.set_default(model)
    for decision, kept in (
        ("reject", ["Kim walks every morning", "Kim's favourite food is kimchi"]),
        ("approve", ["Kim's favourite food is kimchi"]),
    ):
        await ws.send({"type": "input_text", "text": "Please forget that I walk every morning?"})
        req = await ws.wait_for("approval.request", timeout=30)
        assert req["name"] == "delete_memory"
        # the user is asked in their terms: the memory's text, not its id
        assert req["description"] == 'Forget that "Kim walks every morning"'
        assert req["question"] == (
            'Before I do that, I need your okay: Forget that "Kim walks every morning". '
            "Shall I go ahead? Say yes or no."
        )
        answer = {"type": "approval.response", "call_id": req["call_id"], "decision": decision}
        await ws.send(answer | ({"message": "keep it"} if decision == "reject" else {}))
        await ws.wait_for("response.done", timeout=30)
        result = ws.of_type("response.tool_result")[-1]
        if decision == "reject":
            assert result["ok"] is False and "rejected" in result["summary"]
            assert "keep it" in tool_results(llm.chat_requests(mem0=False)[-1])[-1]["error"]
        else:
            assert result["ok"] is True and result["summary"] == "forgot: Kim walks every morning"
        assert sorted(h.memory for h in await srv.call(memory.list("kim", 10))) == kept


async def test_a_tool_round_counts_as_progress_for_the_stream_timeouts(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    """Two LLM calls of 1.5 s each: 3 s to the first text, over a 2.5 s first-token limit,
    but the finished tool between them shows the turn is alive. (Each call keeps 1 s of
    margin under the limit, so a loaded host does not turn it into a timeout.)"""
    srv = server_factory(llm, llm_first_token_timeout_s=2.5, llm_stream_idle_timeout_s=2.5)
    ws, _ = await connect(srv, "tom")
    llm.queue_reply(tool_calls=[call("schedule_list")], ttft_ms=1500)
    llm.queue_reply("Nothing pending.", ttft_ms=1500)
    _, done = await text_turn(ws, "any reminders?")
    assert done["status"] == "completed" and done["text"] == "Nothing pending."
    assert done["timings"]["ttft_ms"] >= 3000
