"""A spoken request acted on: espeak speech through the real VAD and Whisper base over
/v1/ws, the model (the fake, deciding from the transcript like a real one would) calls
schedule_create, and the reminder is listed by REST and delivered when due."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_voice import stream_audio
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.server_harness import ServerThread, open_ws
from tests.speech import speak, with_silence


def reminder_model(body: dict[str, Any]) -> Any:
    """Set a reminder when the user asks for one: 'ten minutes' or 'one second'."""
    last = body["messages"][-1]
    if last["role"] != "user":
        return "Okay, I will remind you."
    said = str(last["content"]).lower()
    if "remind" not in said:
        return "Sorry, what should I remember?"
    minutes = 10 if ("ten minutes" in said or "10 minutes" in said) else 1 / 60
    what = "stretch" if "stretch" in said else "drink water"
    return Reply(
        tool_calls=[
            {"name": "schedule_create", "arguments": {"message": what, "in_minutes": minutes}}
        ]
    )


async def test_spoken_request_sets_a_reminder_listed_by_rest_and_delivered(
    server_factory, llm: FakeOpenAI, whisper: Path
) -> None:
    srv: ServerThread = server_factory(llm, stt_model=str(whisper), reminder_check_s=60.0)
    llm.set_default(reminder_model)
    ws = await open_ws(srv, persona="emma", token="sam")
    await ws.wait_for("session.created")
    await ws.send({"type": "session.update", "session": {"output_audio": "none"}})
    await ws.wait_for("session.updated")
    await stream_audio(
        ws, with_silence(speak("Please remind me to stretch in ten minutes."), 400, 1200), 0.25
    )
    heard = await ws.wait_for("transcript.done", timeout=60)
    assert "remind" in heard["text"].lower()
    result = await ws.wait_for("response.tool_result", timeout=30)
    assert result["name"] == "schedule_create" and result["ok"] is True
    done = await ws.wait_for("response.done", timeout=30)
    assert done["status"] == "completed" and done["text"] == "Okay, I will remind you."
    async with httpx.AsyncClient(base_url=srv.url) as http:
        rows = (await http.get("/v1/reminders", headers={"Authorization": "Bearer sam"})).json()
    (rem,) = rows["reminders"]
    assert rem["text"] == "stretch" and rem["status"] == "pending"
    left = datetime.fromisoformat(rem["due_at"]) - datetime.fromisoformat(rem["created_at"])
    assert 595 <= left.total_seconds() <= 605
    # a second spoken request, due in a second, arrives as a `reminder` event
    await stream_audio(
        ws, with_silence(speak("Remind me to drink water in one second."), 400, 1200), 0.25
    )
    ev = await ws.wait_for("reminder", timeout=60)
    assert ev["text"] == "drink water"
    async with httpx.AsyncClient(base_url=srv.url) as http:
        rows = (await http.get("/v1/reminders", headers={"Authorization": "Bearer sam"})).json()
    assert {r["text"]: r["status"] for r in rows["reminders"]} == {
        "stretch": "pending",
        "drink water": "delivered",
    }
