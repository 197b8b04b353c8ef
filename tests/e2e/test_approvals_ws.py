"""Approvals over a real server: a pending approval (stored by a turn on an earlier socket)
is asked again when the user reconnects, answered by event or by a short spoken/typed yes,
listed by GET /v1/approvals (own data only); bad answers are errors on an open socket."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx

from server.store.base import utcnow
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, open_ws, text_turn


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}"}


async def pending(srv: ServerThread, user: str, call_id: str, minutes: float = 5) -> None:
    await srv.call(
        srv.services.store.add_approval(
            user,
            "earlier-session",
            call_id,
            "weather__set_alarm",
            {"time": "07:00"},
            "Set an alarm for 07:00",
            utcnow() + timedelta(minutes=minutes),
        )
    )


async def test_pending_approval_is_asked_again_and_answered_by_event(
    server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = server_factory(llm)
    await pending(srv, "ann", "call_a")
    await pending(srv, "ann", "call_old", minutes=-1)  # expired while away
    llm.queue_reply("That alarm request timed out, so I did not set it.")
    ws = await open_ws(srv, persona="emma", token="ann")
    await ws.wait_for("session.created")
    req = await ws.wait_for("approval.request")
    assert req["call_id"] == "call_a" and req["name"] == "weather__set_alarm"
    assert req["arguments"] == {"time": "07:00"} and req["description"] == "Set an alarm for 07:00"
    # the expired one is settled and the persona says so (a turn continued after it)
    said = await ws.wait_for("response.created", continues="call_old")
    done = await ws.wait_for("response.done", response_id=said["response_id"])
    assert done["text"] == "That alarm request timed out, so I did not set it."
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"]
    assert "did not answer within" in prompt[-1]["content"]  # the skipped call's result
    # bad answers: an error each, the socket stays open
    for bad in (
        {"type": "approval.response", "call_id": "nope", "decision": "approve"},
        {"type": "approval.response", "call_id": "call_old", "decision": "approve"},
        {"type": "approval.response", "call_id": "call_a", "decision": "edit"},
        {"type": "approval.response", "call_id": "call_a", "decision": "maybe"},
    ):
        await ws.send(bad)
        err = await ws.wait_for("error")
        assert err["code"] in ("approval_not_pending", "invalid_event"), err
    await ws.send(
        {
            "type": "approval.response",
            "call_id": "call_a",
            "decision": "edit",
            "arguments": {"time": "08:00"},
        }
    )
    llm.queue_reply("I could not set it.")
    went_on = await ws.wait_for("response.created", continues="call_a")
    await ws.wait_for("response.done", response_id=went_on["response_id"])
    async with httpx.AsyncClient(base_url=srv.url) as http:
        got = (await http.get("/v1/approvals", headers=auth("ann"))).json()["approvals"]
        assert {a["call_id"]: a["status"] for a in got} == {
            "call_a": "edited",
            "call_old": "expired",
        }
        edited = next(a for a in got if a["call_id"] == "call_a")
        assert edited["decided_arguments"] == {"time": "08:00"}
        r = await http.get("/v1/approvals/call_a", headers=auth("ann"))
        assert r.status_code == 200 and r.json()["status"] == "edited"
        assert (await http.get("/v1/approvals/call_a", headers=auth("bob"))).status_code == 404
        assert (await http.get("/v1/approvals", headers=auth("bob"))).json() == {"approvals": []}
        r = await http.get("/v1/approvals?status=pending", headers=auth("ann"))
        assert r.json() == {"approvals": []}
        assert (await http.get("/v1/approvals?status=x", headers=auth("ann"))).status_code == 422
    # a plain turn afterwards works as usual
    llm.queue_reply("Done.")
    _, done = await text_turn(ws, "thanks")
    assert done["status"] == "completed"
    await ws.conn.close()
