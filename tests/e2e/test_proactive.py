"""Proactive speech over a real server and WebSocket, with short timings: idle, a cron
schedule, the webhook, modes, cooldown, quiet hours, no trigger during a reply, once-only
across a restart, usage and history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws, text_turn

FAST = {"proactive_tick_s": 0.05, "proactive_cooldown_s": 0.0}


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}"}


def proactive_dir(tmp: Path, persona: str = "emma", schedules: list[Any] | None = None) -> Path:
    d = tmp / "proactive"
    d.mkdir(exist_ok=True)
    src = Path(__file__).resolve().parents[2] / "personas" / "proactive" / "default.json"
    (d / "default.json").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    (d / f"{persona}.json").write_text(json.dumps({"schedules": schedules or []}))
    return d


async def no_event(ws: WsClient, type_: str, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        await ws.wait_for(type_, timeout=seconds)


async def connect(srv: ServerThread, user: str, **session: Any) -> WsClient:
    ws = await open_ws(srv, persona="emma", token=user)
    await ws.wait_for("session.created")
    if session:
        await ws.send({"type": "session.update", "session": session})
        await ws.wait_for("session.updated")
    return ws


async def test_idle_speaks_once_per_silence_and_is_counted_and_stored(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, proactive_idle_s=0.5, proactive_dir=proactive_dir(tmp_path), **FAST)
    llm.queue_reply("Still there? I found a fun fact about kites.")
    ws = await connect(srv, "idle-user")
    created = await ws.wait_for("response.created", timeout=10)
    assert created["trigger"] == "idle"
    done = await ws.wait_for("response.done", response_id=created["response_id"])
    assert done["trigger"] == "idle" and done["status"] == "completed"
    assert done["text"] == "Still there? I found a fun fact about kites."
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"][-1]["content"]
    assert "has said nothing for a while" in prompt
    # the same silence does not speak twice (cooldown is 0 here)
    await no_event(ws, "response.created", 1.5)
    # a user turn is a plain turn (no trigger), and it starts a new silence
    llm.queue_reply("Hi!")
    _, plain = await text_turn(ws, "hello")
    assert "trigger" not in plain
    llm.queue_reply("Me again.")
    again = await ws.wait_for("response.created", timeout=10)
    assert again["trigger"] == "idle"
    await ws.wait_for("response.done", response_id=again["response_id"])
    async with httpx.AsyncClient(base_url=srv.url, headers=auth("idle-user")) as http:
        for _ in range(40):  # usage is accounting, written as response.done goes out
            usage = (await http.get("/v1/usage")).json()
            if usage["usage"].get("llm_calls") == 3:
                break
            await asyncio.sleep(0.05)
        sid = (await http.get("/v1/sessions")).json()["sessions"][0]["id"]
        msgs = (await http.get(f"/v1/sessions/{sid}/messages")).json()["messages"]
    assert usage["usage"]["proactive_turns"] == 2
    assert usage["usage"]["llm_calls"] == 3  # two proactive turns and one plain turn
    roles = [(m["role"], m["content"][:20]) for m in msgs]
    assert roles[0] == ("system", "[proactive idle] (Th")
    assert roles[1] == ("assistant", "Still there? I found")
    await ws.conn.close()


async def test_modes_off_and_quiet_and_bad_settings(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, proactive_idle_s=0.3, proactive_dir=proactive_dir(tmp_path), **FAST)
    ws = await connect(srv, "mode-user", proactive_mode="off")
    await no_event(ws, "response.created", 1.2)
    async with httpx.AsyncClient(base_url=srv.url, headers=auth("mode-user")) as http:
        r = await http.post("/v1/proactive/trigger", json={"reason": "new mail"})
        assert r.status_code == 409 and "mode off" in r.json()["detail"]
        # quiet: idle stays silent, an app's request speaks
        await ws.send({"type": "session.update", "session": {"proactive_mode": "quiet"}})
        await ws.wait_for("session.updated")
        await no_event(ws, "response.created", 1.2)
        llm.queue_reply("You have new mail.")
        r = await http.post("/v1/proactive/trigger", json={"reason": "new mail from Mina"})
        assert r.status_code == 200 and r.json() == {"status": "started"}
        created = await ws.wait_for("response.created")
        assert created["trigger"] == "webhook"
        await ws.wait_for("response.done", response_id=created["response_id"])
        body = llm.chat_requests(mem0=False)[-1]["body"]["messages"][-1]["content"]
        assert "new mail from Mina" in body
    for bad in (
        {"proactive_mode": "loud"},
        {"proactive_quiet_hours": "25:00-07:00"},
        {"timezone": "Mars/Olympus"},
    ):
        await ws.send({"type": "session.update", "session": bad})
        err = await ws.wait_for("error")
        assert err["code"] == "invalid_event", err
    await ws.conn.close()


async def test_saved_default_mode_applies_to_new_sessions(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, proactive_idle_s=0.3, proactive_dir=proactive_dir(tmp_path), **FAST)
    async with httpx.AsyncClient(base_url=srv.url, headers=auth("saver")) as http:
        r = await http.put("/v1/settings", json={"proactive_mode": "off"})
        assert r.status_code == 200
    ws = await connect(srv, "saver")
    await no_event(ws, "response.created", 1.2)
    await ws.conn.close()


async def test_cooldown_quiet_hours_and_never_during_a_reply(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    srv = server_factory(
        llm,
        proactive_idle_s=0.3,
        proactive_dir=proactive_dir(tmp_path),
        proactive_tick_s=0.05,
        proactive_cooldown_s=60.0,
    )
    llm.queue_reply("Hello there.")
    ws = await connect(srv, "cool-user")
    first = await ws.wait_for("response.created", timeout=10)
    assert first["trigger"] == "idle"
    await ws.wait_for("response.done", response_id=first["response_id"])
    llm.queue_reply("ok")
    await text_turn(ws, "hi")
    # a new silence, but within the cooldown: nothing
    await no_event(ws, "response.created", 1.2)
    async with httpx.AsyncClient(base_url=srv.url, headers=auth("cool-user")) as http:
        # during a reply: refused, and no proactive turn starts
        llm.queue_reply(tokens=["a "] * 40, token_ms=50)
        await ws.send({"type": "input_text", "text": "tell me a long story"})
        created = await ws.wait_for("response.created")
        r = await http.post("/v1/proactive/trigger", json={"reason": "x"})
        assert r.status_code == 409 and "turn or playback" in r.json()["detail"]
        await ws.wait_for("response.done", response_id=created["response_id"])
        # quiet hours around now, in the user's zone
        now = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Seoul"))
        span = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=1)):%H:%M}"
        await ws.send(
            {
                "type": "session.update",
                "session": {"proactive_quiet_hours": span, "timezone": "Asia/Seoul"},
            }
        )
        await ws.wait_for("session.updated")
        r = await http.post("/v1/proactive/trigger", json={"reason": "x"})
        assert r.status_code == 409 and "quiet hours" in r.json()["detail"]
        # the webhook is not held by the cooldown: outside quiet hours it speaks
        await ws.send({"type": "session.update", "session": {"proactive_quiet_hours": ""}})
        await ws.wait_for("session.updated")
        llm.queue_reply("Ping from your calendar app.")
        r = await http.post("/v1/proactive/trigger", json={"reason": "meeting soon"})
        assert r.status_code == 200
        # another user has no live session; bad bodies are 422
        r = await http.post("/v1/proactive/trigger", json={"reason": "x"}, headers=auth("nobody"))
        assert r.status_code == 404
        r = await http.post("/v1/proactive/trigger", json={"reason": ""})
        assert r.status_code == 422
        r = await http.post("/v1/proactive/trigger", json={"reason": "x", "extra": 1})
        assert r.status_code == 422
    created = await ws.wait_for("response.created", trigger="webhook")
    await ws.wait_for("response.done", response_id=created["response_id"])
    await ws.conn.close()


def once_at(t: datetime) -> str:
    """A 6-field cron (seconds last) that fires once a day at t (UTC)."""
    return f"{t.minute} {t.hour} * * * {t.second}"


async def test_schedule_fires_once_across_a_restart(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    d = proactive_dir(tmp_path, schedules=[{"id": "hello", "name": "a hello", "cron": once_at(at)}])
    over = {"proactive_idle_s": 3600.0, "proactive_dir": d, "data_dir": tmp_path / "shared"}
    srv = server_factory(llm, **over, **FAST)
    llm.queue_reply("Good morning!")
    ws = await connect(srv, "sched-user")
    created = await ws.wait_for("response.created", timeout=15)
    assert created["trigger"] == "schedule"
    await ws.wait_for("response.done", response_id=created["response_id"])
    assert datetime.now(UTC) >= at
    body = llm.chat_requests(mem0=False)[-1]["body"]["messages"][-1]["content"]
    assert '"a hello"' in body
    await ws.conn.close()
    srv.stop()
    # a restarted server (same store) looks back for missed fires, finds this one taken
    srv2 = server_factory(llm, **over, **FAST)
    ws2 = await connect(srv2, "sched-user")
    await no_event(ws2, "response.created", 1.5)
    fires = await srv2.call(srv2.services.store.list_proactive_fires("sched-user"))
    assert [f.trigger for f in fires] == ["schedule"]
    await ws2.conn.close()


async def test_two_live_sessions_of_one_user_speak_a_schedule_once(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    d = proactive_dir(tmp_path, schedules=[{"id": "hi", "name": "hi", "cron": once_at(at)}])
    srv = server_factory(llm, proactive_idle_s=3600.0, proactive_dir=d, **FAST)
    a, b = await connect(srv, "twin"), await connect(srv, "twin")

    async def spoke(ws: WsClient) -> bool:
        try:
            await ws.wait_for("response.created", timeout=8)
            return True
        except TimeoutError:
            return False

    results = await asyncio.gather(spoke(a), spoke(b))
    assert sorted(results) == [False, True]
    for ws in (a, b):
        await ws.conn.close()


async def test_an_error_dialog_that_stays_on_screen_is_offered_help(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    """A scripted VLM describes the screen as an error dialog; once it has stayed for
    PROACTIVE_ERROR_SCREEN_S the persona offers help, and only with the vision switch on."""
    from tests.pipelines.test_vision_pipeline import ui_jpeg

    def reply(body: dict[str, Any]) -> str:
        has_image = any(
            isinstance(m.get("content"), list)
            and any(p.get("type") == "image_url" for p in m["content"])
            for m in body["messages"]
        )
        if has_image:
            return "An error dialog: 'Build failed: exception in main.py' over the editor."
        return "That build error looks annoying. Want me to read it with you?"

    llm.set_default(reply)
    srv = server_factory(
        llm,
        vlm_base_url=llm.base_url,
        vlm_api_key="k",
        vlm_model="fake-vlm",
        vlm_min_interval_s=0.0,
        proactive_idle_s=3600.0,
        proactive_error_screen_s=0.5,
        proactive_dir=proactive_dir(tmp_path),
        **FAST,
    )
    ws = await connect(srv, "screen-user")
    await ws.send_raw(b"\x02" + ui_jpeg(0))
    await ws.wait_for("vision.description")
    await no_event(ws, "response.created", 1.2)  # the vision switch is off
    await ws.send({"type": "session.update", "session": {"proactive_vision": True}})
    await ws.wait_for("session.updated")
    created = await ws.wait_for("response.created", timeout=10)
    assert created["trigger"] == "error_screen"
    done = await ws.wait_for("response.done", response_id=created["response_id"])
    assert done["text"] == "That build error looks annoying. Want me to read it with you?"
    persona = [r for r in llm.chat_requests(mem0=False) if not r["images"]]
    assert "Build failed: exception in main.py" in persona[-1]["body"]["messages"][-1]["content"]
    await ws.conn.close()


async def test_the_user_coming_back_to_the_screen_is_greeted(
    tmp_path: Path, server_factory: Callable[..., ServerThread], llm: FakeOpenAI
) -> None:
    """Landmark frames of a real face (tests/analysis/face_synth.py), then none for longer
    than PROACTIVE_AWAY_S (the user is away), then frames again: the persona greets them."""
    from tests.analysis.face_synth import astronaut_face, face_model_path, neutral_frame

    srv = server_factory(
        llm,
        face_model_path=face_model_path(),
        face_affect_max_age_s=0.3,
        proactive_away_s=0.6,
        proactive_idle_s=3600.0,
        proactive_dir=proactive_dir(tmp_path),
        **FAST,
    )
    frame = {
        "type": "face.landmarks",
        "landmarks": neutral_frame().round(5).tolist(),
        "blendshapes": {k: round(v, 4) for k, v in astronaut_face().blendshapes.items()},
    }
    ws = await connect(srv, "face-user", proactive_vision=True)
    t_ms = 0

    async def present(seconds: float) -> None:
        nonlocal t_ms
        for _ in range(int(seconds / 0.1)):
            t_ms += 100
            await ws.send(frame | {"t_ms": t_ms})
            await asyncio.sleep(0.1)

    await present(0.6)
    await ws.wait_for("analysis.face")
    await no_event(ws, "response.created", 1.5)  # away: no face for 1.5 s, nothing said
    llm.queue_reply("Welcome back!")
    await present(0.6)
    created = await ws.wait_for("response.created", timeout=10)
    assert created["trigger"] == "return"
    done = await ws.wait_for("response.done", response_id=created["response_id"])
    assert done["text"] == "Welcome back!"
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"][-1]["content"]
    assert "just come back to the screen" in prompt
    await ws.conn.close()
