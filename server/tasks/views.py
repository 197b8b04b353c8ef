"""JSON shapes of tasks, actions and routes (REST and WebSocket share them), per-task
metrics, the way home after a cancel, and the preview line the persona says."""

from __future__ import annotations

import re
from typing import Any

from server.store.base import TaskActionRecord, TaskRecord, TaskRouteRecord

FAILURE_OPTIONS = ("retry", "take_over", "cancel")
# A spoken or typed answer to "shall I?": the start of the utterance decides.
YES = re.compile(
    r"^\s*(yes|yeah|yep|ok(ay)?|sure|go ahead|do it|please do"
    r"|네|예|응|그래|좋아|해\s?줘|눌러)",
    re.I,
)
NO = re.compile(r"^\s*(no\b|nope|stop|wait|don'?t|아니|안\s?돼|잠깐|멈춰|하지\s?마|취소)", re.I)


def iso(dt: Any) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def action_json(a: TaskActionRecord) -> dict[str, Any]:
    t = a.target_element
    return {
        "action_id": a.id,
        "task_id": a.task_id,
        "step": a.step_number,
        "action_type": a.action_type,
        "target": t.get("target"),
        "coordinates": t.get("coordinates"),
        "text": t.get("text", ""),
        "description": t.get("description"),
        "reasoning": t.get("reasoning"),
        "final": bool(t.get("final")),
        "status": a.status,
        "screenshot_ref": a.screenshot_ref,
        "execution_time_ms": a.execution_time_ms,
        "created_at": iso(a.created_at),
        "updated_at": iso(a.updated_at),
        "details": a.details,
    }


def preview_json(a: TaskActionRecord) -> dict[str, Any]:
    """The seed's next_action_preview (its ``type`` is ``action_type`` here, since events
    already have a type), plus where and why."""
    full = action_json(a)
    keys = ("action_id", "step", "action_type", "target", "coordinates", "text")
    return {k: full[k] for k in keys} | {
        "description": full["description"],
        "reasoning": full["reasoning"],
        "final": full["final"],
    }


def task_json(t: TaskRecord) -> dict[str, Any]:
    return {
        "task_id": t.id,
        "app_name": t.app_name,
        "task": t.description,
        "status": t.status,
        "current_step": t.current_step,
        "started_at": iso(t.started_at),
        "updated_at": iso(t.updated_at),
        "ended_at": iso(t.ended_at),
        "failure": t.details.get("failure"),
        "blocked": t.details.get("blocked"),
        "home": t.details.get("home"),
        "interrupted": t.details.get("interrupted"),
    }


def route_json(r: TaskRouteRecord | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "planned_route": r.planned_route,
        "actual_route": r.actual_route,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }


def metrics(t: TaskRecord, actions: list[TaskActionRecord]) -> dict[str, Any]:
    """Seed 001 section 4.2/11.2: step success rate (successful actions / decided actions),
    overall success, time per step split into VLM and server. Reaching the payment screen
    is the goal of an ordering task, so blocked_payment counts as overall success."""
    decided = [a for a in actions if a.status != "pending" and not _withdrawn(a)]
    ok = [a for a in decided if a.status == "success"]
    steps = [a for a in actions if "vlm_ms" in a.details]

    def mean(key: str) -> float | None:
        vals = [float(a.details[key]) for a in steps if a.details.get(key) is not None]
        return round(sum(vals) / len(vals), 1) if vals else None

    return {
        "steps_decided": len(decided),
        "steps_succeeded": len(ok),
        "step_success_rate": round(len(ok) / len(decided), 3) if decided else None,
        "overall_success": t.status in ("completed", "blocked_payment"),
        "mean_vlm_ms": mean("vlm_ms"),
        "mean_server_ms": mean("server_ms"),
        "per_step": [
            {
                "step": a.step_number,
                "vlm_ms": a.details.get("vlm_ms"),
                "server_ms": a.details.get("server_ms"),
                "status": a.status,
            }
            for a in steps
        ],
    }


def _withdrawn(a: TaskActionRecord) -> bool:
    """Declined, superseded or cancelled actions say nothing about the planner's accuracy."""
    return a.details.get("reason") in ("declined", "superseded", "cancelled")


def home_route(route: TaskRouteRecord | None) -> dict[str, Any]:
    """After a cancel: the way back to the app's start screen, one 'back' per step taken."""
    actual = route.actual_route if route is not None else []
    start = actual[0].get("screen") if actual else None
    steps = [
        {
            "action_type": "key",
            "target": "Back",
            "text": "Escape",
            "description": f"back to: {s.get('screen')}",
        }
        for s in reversed(actual)
    ]
    return {"start_screen": start, "steps": steps}


def preview_line(language: str, a: dict[str, Any]) -> str:
    """What the persona says before an action: the step and a question, in its language."""
    target = a.get("target") or ""
    what = a.get("description") or target
    if language.startswith("ko"):
        if a.get("final"):
            return f"마지막 단계예요. 이제 '{target}'을(를) 누르면 끝나요. 진행할까요?"
        return f"이제 '{target}' 버튼을 누를게요. ({what}) 괜찮으면 '응'이라고 해 주세요."
    if a.get("final"):
        return f"This is the last step: {what}. Shall I go ahead?"
    return f"Next I'll {what} ('{target}'). Say yes and I'll do it."


def clicked_answer(action: TaskActionRecord, yes: bool, message: str | None = None) -> str:
    """The user's clicked answer to a preview as a line of theirs in the model's history
    (a spoken one is their own words): the next turn knows what they decided."""
    t = action.target_element
    what = f"step {action.step_number}: {action.action_type} '{t.get('target')}'"
    if yes:
        return f"[clicked Yes] Go ahead with {what}."
    why = f" {message.strip()}" if message and message.strip() else ""
    return f"[clicked No] Don't do {what}.{why}"
