"""Screen tasks over a real server without a browser: synthetic screenshots (OpenCV), the
fake VLM answering per screen, REST and the WebSocket as a client uses them."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import structlog
import structlog.testing

from server.store.base import CONSENT_ITEMS
from server.tasks.voice import PHRASE_MARKER
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws
from tests.tasks.screens import PERSONA_LINE, ScreenVLM, drawn_screen, step

MARKERS = {
    (255, 0, 0): "home",
    (0, 255, 0): "list",
    (0, 0, 255): "detail",
    (255, 255, 0): "pay",
}
HOME = drawn_screen((255, 0, 0), "Home")
LIST = drawn_screen((0, 255, 0), "List")
DETAIL = drawn_screen((0, 0, 255), "Detail")
PAY = drawn_screen((255, 255, 0), "Wallet")
ANSWERS: dict[str, list[Any]] = {
    "home": [step("Home", "Menu", (100, 200), "List", ["Home"])],
    "list": [step("List", "Big Mac", (300, 200), "Detail", ["List"])],
    "detail": [step("Detail", "Add", (300, 300), "Cart", ["Detail"])],
    # nothing in its text says payment: only the VLM's flag can catch it
    "pay": [step("Wallet", "Confirm", (300, 300), "Done", ["Wallet"], payment=True)],
}
BODY = {"app_name": "Burger", "task": "order a Big Mac", "consent_confirmed": True}


def b64(image: bytes) -> str:
    return base64.b64encode(image).decode()


@pytest.fixture
def vlm(llm: FakeOpenAI) -> ScreenVLM:
    fake = ScreenVLM(MARKERS, {k: list(v) for k, v in ANSWERS.items()})
    llm.set_default(fake)
    return fake


@pytest.fixture
def srv(server_factory: Callable[..., ServerThread], llm: FakeOpenAI, vlm: ScreenVLM):
    return server_factory(llm, task_screen_wait_s=2.0, task_max_retries=2)


async def client(srv: ServerThread, user: str, consent: bool = True) -> httpx.AsyncClient:
    http = httpx.AsyncClient(
        base_url=srv.url, headers={"Authorization": f"Bearer {user}"}, timeout=20
    )
    if consent:
        r = await http.post("/v1/users/consent", json={"items": dict.fromkeys(CONSENT_ITEMS, True)})
        assert r.status_code == 200
    return http


@pytest.fixture
async def http(srv: ServerThread) -> AsyncIterator[httpx.AsyncClient]:
    c = await client(srv, "rest-user")
    yield c
    await c.aclose()


async def start(http: httpx.AsyncClient, image: bytes = HOME) -> dict[str, Any]:
    r = await http.post("/v1/tasks", json=BODY | {"screenshot": b64(image)})
    assert r.status_code == 201, r.text
    return r.json()


async def confirm(
    http: httpx.AsyncClient, task_id: str, action_id: str, image: bytes | None, **kw: Any
) -> httpx.Response:
    body: dict[str, Any] = {"executed": True} | kw
    if image is not None:
        body["screenshot"] = b64(image)
    return await http.post(f"/v1/tasks/{task_id}/actions/{action_id}/confirm", json=body)


async def test_wrong_screen_fails_the_step(http: httpx.AsyncClient, vlm: ScreenVLM) -> None:
    # after "Menu" the VLM says the screen is not the expected one
    vlm.answers["list"] = [step("Settings", "Back", (10, 10), "Home", ["Settings"], matches=False)]
    t = await start(http)
    r = await confirm(http, t["task_id"], t["next_action_preview"]["action_id"], LIST)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (
        out["action"]["status"] == "failed" and out["action"]["details"]["reason"] == "wrong_screen"
    )
    assert out["action"]["details"]["diff"]["changed"] is True
    assert out["task"]["status"] == "failed" and out["next_action_preview"] is None
    failure = out["task"]["failure"]
    assert failure["reason"] == "wrong_screen" and "Settings" in failure["message"]
    assert failure["options"] == ["retry", "take_over", "cancel"]


async def test_retries_are_bounded_by_max_retries(http: httpx.AsyncClient) -> None:
    t = await start(http)
    task_id, action_id = t["task_id"], t["next_action_preview"]["action_id"]
    lefts = []
    for _ in range(3):  # the first try and TASK_MAX_RETRIES=2 retries, each changes nothing
        r = await confirm(http, task_id, action_id, HOME)
        failure = r.json()["task"]["failure"]
        assert failure["reason"] == "no_change"
        lefts.append(failure["retries_left"])
        if failure["retries_left"] == 0:
            assert failure["options"] == ["take_over", "cancel"]
            break
        r = await http.post(f"/v1/tasks/{task_id}/actions/{action_id}/retry")
        assert r.status_code == 200, r.text
        again = r.json()["next_action_preview"]
        assert again["step"] == 1 and again["action_id"] != action_id
        action_id = again["action_id"]
    assert lefts == [2, 1, 0]
    r = await http.post(f"/v1/tasks/{task_id}/actions/{action_id}/retry")
    assert r.status_code == 409 and "take over" in r.json()["detail"]
    # take over: pause, the user does it by hand, resume reads the new screen
    assert (await http.patch(f"/v1/tasks/{task_id}/pause")).json()["status"] == "paused"
    r = await http.post(f"/v1/tasks/{task_id}/actions", json={"screenshot": b64(LIST)})
    assert r.status_code == 409  # paused: no planning
    assert (await http.patch(f"/v1/tasks/{task_id}/resume")).status_code == 200
    r = await http.post(f"/v1/tasks/{task_id}/actions", json={"screenshot": b64(LIST)})
    assert r.json()["next_action_preview"]["target"] == "Big Mac"
    task = (await http.get(f"/v1/tasks/{task_id}")).json()
    reasons = [a["details"].get("reason") for a in task["actions"]]
    assert reasons.count("no_change") == 3 and "superseded" in reasons
    assert task["metrics"]["step_success_rate"] == 0.0  # 3 failed, withdrawn ones not counted


async def test_malformed_vlm_answer_retried_once_then_reported(
    http: httpx.AsyncClient, vlm: ScreenVLM, llm: FakeOpenAI
) -> None:
    vlm.answers["home"] = ['{"current_screen": "Home"}', "not json", ANSWERS["home"][0]]
    r = await http.post("/v1/tasks", json=BODY | {"screenshot": b64(HOME)})
    assert r.status_code == 201
    out = r.json()
    assert out["status"] == "failed" and out["next_action_preview"] is None
    assert out["failure"]["reason"] == "vlm_malformed"
    assert "not valid JSON" in out["failure"]["message"]
    assert vlm.visits["home"] == 2  # the first answer and one retry, no third call
    assert out["failure"]["action_id"] is None and out["failure"]["retries_left"] == 2
    r = await http.post(f"/v1/tasks/{out['task_id']}/actions/none/retry")
    assert r.status_code == 404  # no such action: a failed reading is retried as below
    # asking for the next action on a failed task retries the step: this answer is good
    r = await http.post(f"/v1/tasks/{out['task_id']}/actions", json={"screenshot": b64(HOME)})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "running"
    assert r.json()["next_action_preview"]["target"] == "Menu"


async def test_spoken_yes_and_no_answer_the_preview(
    srv: ServerThread, http: httpx.AsyncClient, llm: FakeOpenAI
) -> None:
    ws = await open_ws(srv, persona="haru", token="rest-user")
    session_id = (await ws.wait_for("session.created"))["session"]["id"]
    t = await start(http)
    preview = t["next_action_preview"]
    ev = await ws.wait_for("task.action_preview", action_id=preview["action_id"])
    assert ev["say"] == "이제 'Menu' 버튼을 누를게요. (press Menu) 괜찮으면 '응'이라고 해 주세요."
    # the persona asks in its own words: an LLM call with its own system prompt, spoken as
    # a response of its own (stored as its message, no user message)
    asked = await ws.wait_for("response.done")
    assert asked["text"] == f"{PERSONA_LINE} Menu?" and asked["status"] == "completed"
    phrase = [r for r in llm.chat_requests() if PHRASE_MARKER in str(r["body"]["messages"])]
    assert "박하루" in phrase[0]["body"]["messages"][0]["content"]
    said = (await http.get(f"/v1/sessions/{session_id}/messages")).json()["messages"]
    assert [(m["role"], m["content"]) for m in said] == [("assistant", asked["text"])]
    await ws.send({"type": "input_text", "text": "응, 눌러 줘"})
    go = await ws.wait_for("task.action_execute", action_id=preview["action_id"])
    assert go["coordinates"] == {"x": 100, "y": 200}
    reply = await ws.wait_for("response.done")  # the turn itself still ran
    assert reply["text"] == "An ordering app."  # the fake's answer to any other chat call
    # the model saw what the persona asked and the user's yes to it (its history has both)
    turn = [r["body"]["messages"] for r in llm.chat_requests() if "눌러 줘" in str(r["body"])]
    sent = [(m["role"], m["content"]) for m in turn[0] if m["role"] != "system"]
    assert sent[-2:] == [("assistant", asked["text"]), ("user", "응, 눌러 줘")]
    said = (await http.get(f"/v1/sessions/{session_id}/messages")).json()["messages"]
    assert [(m["role"], m["content"]) for m in said] == [
        ("assistant", asked["text"]),
        ("user", "응, 눌러 줘"),
        ("assistant", "An ordering app."),
    ]
    # the client executes and the screen arrives as a frame after task.executed
    await ws.send(
        {"type": "task.executed", "task_id": t["task_id"], "action_id": preview["action_id"]}
    )
    await ws.send_raw(b"\x02" + LIST)
    res = await ws.wait_for("task.action_result", action_id=preview["action_id"])
    assert res["status"] == "success" and res["execution_time_ms"] >= 0
    nxt = await ws.wait_for("task.action_preview", target="Big Mac")
    await ws.send({"type": "input_text", "text": "아니, 잠깐만"})
    res = await ws.wait_for("task.action_result", action_id=nxt["action_id"])
    assert res["status"] == "failed" and res["reason"] == "declined"
    upd = await ws.wait_for("task.updated", status="paused")
    assert upd["step"] == 1
    # a task event that the state does not allow: an error, the socket stays open
    await ws.send({"type": "task.control", "task_id": t["task_id"], "command": "retry"})
    err = await ws.wait_for("error")
    assert err["code"] == "not_failed" and err["fatal"] is False
    await ws.send({"type": "task.control", "task_id": t["task_id"], "command": "cancel"})
    done = await ws.wait_for("task.done", task_id=t["task_id"])
    assert done["status"] == "cancelled" and done["home"]["start_screen"] == "Home"
    await ws.conn.close()


async def test_clicked_yes_and_no_join_the_history(
    srv: ServerThread, http: httpx.AsyncClient, llm: FakeOpenAI
) -> None:
    ws = await open_ws(srv, persona="haru", token="click-user")
    session_id = (await ws.wait_for("session.created"))["session"]["id"]
    user = await client(srv, "click-user")
    t = await start(user)
    preview = t["next_action_preview"]
    asked = await ws.wait_for("response.done")  # the persona asks in its own words
    await ws.send(
        {"type": "task.confirm", "task_id": t["task_id"], "action_id": preview["action_id"]}
    )
    await ws.wait_for("task.action_execute", action_id=preview["action_id"])
    # stored before the execute went out
    said = (await user.get(f"/v1/sessions/{session_id}/messages")).json()["messages"]
    yes = "[clicked Yes] Go ahead with step 1: click 'Menu'."
    assert [(m["role"], m["content"]) for m in said] == [
        ("assistant", asked["text"]),
        ("user", yes),
    ]
    await ws.send(
        {"type": "task.executed", "task_id": t["task_id"], "action_id": preview["action_id"]}
    )
    await ws.send_raw(b"\x02" + LIST)
    nxt = await ws.wait_for("task.action_preview", target="Big Mac")
    asked2 = await ws.wait_for("response.done")
    # the studio's approvals panel: No, with a reason
    no = {"decision": "reject", "message": "Too pricey."}
    await ws.send({"type": "approval.response", "call_id": nxt["action_id"]} | no)
    await ws.wait_for("task.updated", status="paused")
    await ws.send({"type": "input_text", "text": "뭐가 남았어?"})
    await ws.wait_for("response.done")
    # the next turn's request carries both clicked answers after the questions they answer
    turn = [r["body"]["messages"] for r in llm.chat_requests() if "뭐가 남았어" in str(r["body"])]
    sent = [(m["role"], m["content"]) for m in turn[0] if m["role"] != "system"]
    assert sent[-5:] == [
        ("assistant", asked["text"]),
        ("user", yes),
        ("assistant", asked2["text"]),
        ("user", "[clicked No] Don't do step 2: click 'Big Mac'. Too pricey."),
        ("user", "뭐가 남았어?"),
    ]
    await user.aclose()
    await ws.conn.close()


async def test_task_waits_for_the_first_frame(srv: ServerThread, http: httpx.AsyncClient) -> None:
    ws = await open_ws(srv, persona="emma", token="rest-user")
    await ws.wait_for("session.created")
    r = await http.post("/v1/tasks", json=BODY)
    assert r.status_code == 201 and r.json()["next_action_preview"] is None
    await ws.send({"type": "input_image", "source": "screen", "jpeg_b64": b64(HOME)})
    ev = await ws.wait_for("task.action_preview", task_id=r.json()["task_id"])
    assert ev["target"] == "Menu" and ev["say"].startswith("Next I'll press Menu")
    # the REST view agrees, and a second task is refused while this one is live
    got = (await http.get(f"/v1/tasks/{r.json()['task_id']}")).json()
    assert got["next_action_preview"]["action_id"] == ev["action_id"]
    assert got["next_action_preview"]["type"] == "click"
    again = await http.post("/v1/tasks", json=BODY)
    assert again.status_code == 409 and "cancel it" in again.json()["detail"]
    # executed: false withdraws it and pauses; a confirm for another action is refused
    r2 = await confirm(http, got["task_id"], "not-this-one", None)
    assert r2.status_code == 409
    r2 = await confirm(http, got["task_id"], ev["action_id"], None, executed=False)
    assert r2.json()["action"]["status"] == "failed" and r2.json()["task"]["status"] == "paused"
    await ws.conn.close()


async def test_confirm_without_a_new_screen_times_out(http: httpx.AsyncClient) -> None:
    t = await start(http)
    r = await confirm(http, t["task_id"], t["next_action_preview"]["action_id"], None)
    assert r.status_code == 409 and "TASK_SCREEN_WAIT_S" in r.json()["detail"]
    got = await http.get(
        f"/v1/tasks/{t['task_id']}/actions/{t['next_action_preview']['action_id']}"
    )
    assert got.json()["status"] == "pending"  # still waiting for a screen


async def test_isolation_delete_and_bad_input(srv: ServerThread, http: httpx.AsyncClient) -> None:
    t = await start(http)
    other = await client(srv, "someone-else")
    task_id, action_id = t["task_id"], t["next_action_preview"]["action_id"]
    for r in (
        await other.get(f"/v1/tasks/{task_id}"),
        await other.get(f"/v1/tasks/{task_id}/actions/{action_id}"),
        await other.patch(f"/v1/tasks/{task_id}/cancel"),
        await other.delete(f"/v1/tasks/{task_id}"),
        await confirm(other, task_id, action_id, LIST),
    ):
        assert r.status_code == 404, r.text
    assert (await other.get("/v1/tasks")).json() == {"tasks": []}
    await other.aclose()
    # bad images: not base64, not an image, a broken image body
    for shot, code in (("***", 400), (b64(b"hello world"), 400), (b64(HOME[:200]), 400)):
        r = await http.post(
            f"/v1/tasks/{task_id}/actions/{action_id}/confirm",
            json={"executed": True, "screenshot": shot},
        )
        assert r.status_code == code, (shot[:20], r.text)
    r = await http.post("/v1/tasks", json=BODY | {"task": "x" * 501})
    assert r.status_code == 413
    listed = (await http.get("/v1/tasks")).json()["tasks"]
    assert [x["task_id"] for x in listed] == [task_id]
    kept = srv.settings.data_dir / "tasks" / task_id
    assert [p.name for p in kept.iterdir()] == ["001-1.jpg"]  # the step's screen
    assert (await http.delete(f"/v1/tasks/{task_id}")).json()["deleted"] is True
    assert not kept.exists()  # deleted with the task
    assert (await http.get(f"/v1/tasks/{task_id}")).status_code == 404
    assert (await http.get("/v1/tasks")).json() == {"tasks": []}
    assert (await start(http))["status"] == "running"  # deleting freed the live slot


async def test_consent_items(srv: ServerThread) -> None:
    http = await client(srv, "consenter", consent=False)
    got = (await http.get("/v1/users/consent")).json()
    assert got["complete"] is False and got["missing"] == list(CONSENT_ITEMS)
    assert set(got["items"]["automation_scope"]["text"]) == {"ko", "en"}
    r = await http.post("/v1/users/consent", json={"items": {"pay_for_me": True}})
    assert r.status_code == 422 and "pay_for_me" in r.json()["detail"]
    r = await http.post("/v1/users/consent", json={"items": dict.fromkeys(CONSENT_ITEMS, True)})
    body = r.json()
    assert body["complete"] is True and body["items"]["legal_risk"]["agreed_at"].endswith("Z")
    r = await http.post("/v1/users/consent", json={"items": {"data_storage": False}})
    assert r.json()["missing"] == ["data_storage"]
    r = await http.post("/v1/tasks", json=BODY)
    assert r.status_code == 403 and "data_storage" in r.json()["detail"]
    await http.aclose()


async def test_analyze_element(http: httpx.AsyncClient, llm: FakeOpenAI, vlm: ScreenVLM) -> None:
    llm.queue_reply(
        '{"element": "Menu button", "role": "button", "text": "Menu", "actionable": true, '
        '"purpose": "opens the menu"}'
    )
    r = await http.post("/v1/analyze/element", json={"screenshot": b64(HOME), "x": 100, "y": 200})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "element": {
            "element": "Menu button",
            "role": "button",
            "text": "Menu",
            "actionable": True,
            "purpose": "opens the menu",
        },
        "image": {"width": 640, "height": 400},
    }
    question = llm.chat_requests()[-1]["body"]["messages"][1]["content"][0]["text"]
    assert "x=100, y=200" in question
    box = {"x": 600, "y": 380, "width": 100, "height": 10}
    r = await http.post("/v1/analyze/element", json={"screenshot": b64(HOME), "box": box})
    assert r.status_code == 422 and "outside the 640x400" in r.json()["detail"]
    r = await http.post("/v1/analyze/element", json={"screenshot": b64(HOME), "x": 5})
    assert r.status_code == 422
    r = await http.post("/v1/analyze/element", json={"screenshot": b64(HOME[:300]), "x": 1, "y": 1})
    assert r.status_code == 400


async def test_no_vision_model(server_factory: Callable[..., ServerThread], llm: FakeOpenAI):
    srv = server_factory(llm, vlm_enabled=False)
    http = await client(srv, "novlm")
    r = await http.post("/v1/tasks", json=BODY)
    assert r.status_code == 503 and "vision model" in r.json()["detail"]
    assert (await http.get("/v1/tasks")).json() == {"tasks": []}  # nothing was created
    await http.aclose()


async def test_vlm_flag_blocks_at_once_and_is_logged_critical(http: httpx.AsyncClient) -> None:
    with structlog.testing.capture_logs() as logs:  # the server's loggers, same process
        out = await start(http, PAY)
    assert out["status"] == "blocked_payment" and out["next_action_preview"] is None
    assert out["blocked"]["signals"] == ["vlm_flag"] and out["blocked"]["screen"] == "Wallet"
    task = (await http.get(f"/v1/tasks/{out['task_id']}")).json()
    assert task["actions"] == [] and task["ended_at"] is not None
    assert task["metrics"]["overall_success"] is True  # the goal ends at the payment screen
    r = await http.post(f"/v1/tasks/{out['task_id']}/actions", json={"screenshot": b64(HOME)})
    assert r.status_code == 409  # a blocked task is over
    blocked = [e for e in logs if e["event"] == "task_blocked_payment_screen"]
    assert len(blocked) == 1 and blocked[0]["log_level"] == "critical"
    assert blocked[0]["task_id"] == out["task_id"] and blocked[0]["signals"] == ["vlm_flag"]


async def test_racing_starts_make_one_task(http: httpx.AsyncClient) -> None:

    results = await asyncio.gather(
        *(http.post("/v1/tasks", json=BODY | {"screenshot": b64(HOME)}) for _ in range(3))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409]
    assert len((await http.get("/v1/tasks")).json()["tasks"]) == 1
