"""Reminders over a real server: made through REST, delivered as `reminder` events to the
user's open session when due (or on the next connect), once, and only to that user."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}"}


async def remind(srv: ServerThread, user: str, **body: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        return await http.post("/v1/reminders", json=body, headers=auth(user))


async def connect(srv: ServerThread, user: str) -> WsClient:
    ws = await open_ws(srv, persona="emma", token=user)
    await ws.wait_for("session.created")
    return ws


@pytest.fixture
def srv(server_factory: Callable[..., ServerThread], llm: FakeOpenAI) -> ServerThread:
    # A long check interval: only the due time and the REST change notice may wake delivery.
    return server_factory(llm, reminder_check_s=60.0, reminders_max_pending=3)


async def test_reminder_arrives_when_due_and_is_marked_delivered(srv: ServerThread):
    ws = await connect(srv, "rem1")
    far = await remind(srv, "rem1", text="Renew the passport", in_seconds=3600)
    assert far.status_code == 201
    t0 = time.monotonic()
    r = await remind(srv, "rem1", text="Stretch your back", in_seconds=0.5)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["status"] == "pending" and made["delivered_at"] is None
    due = datetime.fromisoformat(made["due_at"])
    assert due.tzinfo is not None
    ev = await ws.wait_for("reminder", timeout=10)
    waited = time.monotonic() - t0
    assert ev == {
        "type": "reminder",
        "id": made["id"],
        "text": "Stretch your back",
        "due_at": made["due_at"],
        "_t": ev["_t"],
    }
    # not before it was due, and without waiting for the 60 s re-check
    assert 0.4 <= waited < 5, waited
    async with httpx.AsyncClient(base_url=srv.url) as http:
        got = (await http.get(f"/v1/reminders/{made['id']}", headers=auth("rem1"))).json()
        pending = (
            await http.get("/v1/reminders", params={"status": "pending"}, headers=auth("rem1"))
        ).json()["reminders"]
    assert got["status"] == "delivered" and got["delivered_at"] is not None
    assert [p["text"] for p in pending] == ["Renew the passport"]
    await asyncio.sleep(0.5)
    assert len(ws.of_type("reminder")) == 1  # the far one is not sent early


async def test_due_while_away_is_delivered_on_connect_once(srv: ServerThread):
    due = datetime.now(UTC).isoformat()  # due now: given as an aware ISO time
    r = await remind(srv, "rem2", text="Call mum", due_at=due)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    a = await connect(srv, "rem2")
    ev = await a.wait_for("reminder", timeout=10)
    assert ev["id"] == rid and ev["text"] == "Call mum"
    b = await connect(srv, "rem2")  # a second session of the same user: not sent again
    await asyncio.sleep(0.5)
    with pytest.raises(TimeoutError):
        await b.wait_for("reminder", timeout=0.5)


async def test_two_open_sessions_get_a_reminder_once_between_them(srv: ServerThread):
    a, b = await connect(srv, "rem3"), await connect(srv, "rem3")
    r = await remind(srv, "rem3", text="Drink water", in_seconds=0.3)
    assert r.status_code == 201

    async def got(ws: WsClient) -> bool:
        try:
            await ws.wait_for("reminder", timeout=3)
            return True
        except TimeoutError:
            return False

    assert sorted(await asyncio.gather(got(a), got(b))) == [False, True]


async def test_cancel_and_isolation(srv: ServerThread):
    ws = await connect(srv, "rem4")
    other = await connect(srv, "intruder")
    rid = (await remind(srv, "rem4", text="Secret plan", in_seconds=0.6)).json()["id"]
    async with httpx.AsyncClient(base_url=srv.url) as http:
        # another user can neither see nor cancel it
        assert (await http.get(f"/v1/reminders/{rid}", headers=auth("intruder"))).status_code == 404
        assert (
            await http.delete(f"/v1/reminders/{rid}", headers=auth("intruder"))
        ).status_code == 404
        listed = (await http.get("/v1/reminders", headers=auth("intruder"))).json()
        assert listed == {"reminders": []}
        # its owner cancels it before it is due: never delivered
        r = await http.delete(f"/v1/reminders/{rid}", headers=auth("rem4"))
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        again = await http.delete(f"/v1/reminders/{rid}", headers=auth("rem4"))
        assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
        unknown = await http.delete("/v1/reminders/nope", headers=auth("rem4"))
        assert unknown.status_code == 404
    await asyncio.sleep(1.2)
    assert ws.of_type("reminder") == [] and other.of_type("reminder") == []


async def test_bad_reminders_get_clear_errors(srv: ServerThread):
    user = "rem5"
    now = datetime.now(UTC)
    cases = [
        ({"text": "x"}, 422, "exactly one of due_at or in_seconds"),
        ({"text": "x", "in_seconds": 5, "due_at": now.isoformat()}, 422, "exactly one"),
        ({"text": "x", "due_at": "2026-11-21T09:00:00"}, 422, "timezone"),
        ({"text": "x", "due_at": (now - timedelta(hours=1)).isoformat()}, 422, "in the past"),
        ({"text": "x", "due_at": (now + timedelta(days=400)).isoformat()}, 422, "366 days"),
        ({"text": "x", "in_seconds": -1}, 422, "greater than or equal to 0"),
        ({"text": "   ", "in_seconds": 5}, 422, "blank"),
        ({"text": "y" * 501, "in_seconds": 5}, 413, "REMINDER_MAX_CHARS"),
    ]
    for body, code, says in cases:
        r = await remind(srv, user, **body)
        assert r.status_code == code, (body, r.text)
        assert says in r.text, (body, r.text)
    for i in range(3):
        assert (await remind(srv, user, text=f"r{i}", in_seconds=600)).status_code == 201
    full = await remind(srv, user, text="one too many", in_seconds=600)
    assert full.status_code == 409 and "REMINDERS_MAX_PENDING" in full.json()["detail"]
    async with httpx.AsyncClient(base_url=srv.url) as http:
        anonymous = (await http.get("/v1/reminders")).json()  # local mode: user "local"
        assert anonymous == {"reminders": []}
        listed = (await http.get("/v1/reminders", headers=auth(user))).json()["reminders"]
    assert [x["text"] for x in listed] == ["r0", "r1", "r2"]


async def test_recurring_reminders_daily_weekly_in_the_users_time_zone(srv: ServerThread):
    user = "rem6"
    seoul = ZoneInfo("Asia/Seoul")
    daily = await remind(
        srv,
        user,
        text="Take the pills",
        repeat={"every": "daily", "at": "07:30", "time_zone": "Asia/Seoul"},
    )
    assert daily.status_code == 201, daily.text
    d = daily.json()
    assert d["repeat"] == {
        "every": "daily",
        "at": "07:30",
        "weekday": None,
        "time_zone": "Asia/Seoul",
    }
    assert d["occurrences"] == 0 and d["status"] == "pending"
    first = datetime.fromisoformat(d["due_at"])
    assert first.astimezone(seoul).strftime("%H:%M") == "07:30"
    assert timedelta(0) < first - datetime.now(UTC) <= timedelta(days=1)
    async with httpx.AsyncClient(base_url=srv.url, headers=auth(user)) as http:
        # no time zone given: the user's saved one (PUT /v1/settings timezone)
        saved = await http.put("/v1/settings", json={"timezone": "Europe/Berlin"})
        assert saved.status_code == 200, saved.text
        weekly = await http.post(
            "/v1/reminders",
            json={
                "text": "Bins out",
                "repeat": {"every": "weekly", "at": "19:00", "weekday": "tuesday"},
            },
        )
        assert weekly.status_code == 201, weekly.text
        w = weekly.json()
        assert w["repeat"]["time_zone"] == "Europe/Berlin" and w["repeat"]["weekday"] == "tuesday"
        local = datetime.fromisoformat(w["due_at"]).astimezone(ZoneInfo("Europe/Berlin"))
        assert (local.weekday(), local.strftime("%H:%M")) == (1, "19:00")
        # listed with their rules; cancelled like any reminder
        listed = (await http.get("/v1/reminders", params={"status": "pending"})).json()
        assert {x["id"]: x["repeat"]["every"] for x in listed["reminders"]} == {
            d["id"]: "daily",
            w["id"]: "weekly",
        }
        gone = await http.delete(f"/v1/reminders/{w['id']}")
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
        # clear errors for bad rules
        bad = [
            ({"every": "weekly", "at": "19:00"}, 422, "needs a weekday"),
            ({"every": "daily", "at": "19:00", "weekday": "monday"}, 422, "only for weekly"),
            ({"every": "daily", "at": "25:00"}, 422, "HH:MM"),
            ({"every": "daily", "at": "07:30", "time_zone": "Mars/Olympus"}, 422, "IANA"),
            ({"every": "hourly", "at": "07:30"}, 422, "daily"),
        ]
        for rule, code, says in bad:
            r = await http.post("/v1/reminders", json={"text": "x", "repeat": rule})
            assert r.status_code == code and says in r.text, (rule, r.text)
        both = await http.post(
            "/v1/reminders",
            json={"text": "x", "in_seconds": 5, "repeat": {"every": "daily", "at": "07:30"}},
        )
        assert both.status_code == 422 and "exactly one" in both.text
