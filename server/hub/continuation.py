"""Approvals in a live session (server/agent/approvals.py decides; this says and continues).

- The persona asks aloud: the question (a per-persona, per-language line from the data files,
  PROACTIVE_DIR) is spoken in the reply that asks, in the persona's voice, and its text is
  shown (the reply's text and the request event's `question`). An approval asked again on a
  new socket is said as a line of its own.
- A decision whose turn is gone (it asked on a socket that closed, then the user answered
  after a reconnect or a resume) continues that turn: the call runs with the approved or
  edited arguments, or is skipped, and a continuation turn tells the user, stored in the
  history like any turn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.agent.approvals import Decision
from server.store.base import ApprovalRecord

if TYPE_CHECKING:
    from server.hub.session import Session


def question(s: Session, rec: ApprovalRecord) -> str:
    """The line that asks; ids mean nothing to people, so they are left out of it."""
    shown = {k: v for k, v in rec.arguments.items() if k != "id" and not k.endswith("_id")}
    args = ", ".join(f"{k}: {_short(v)}" for k, v in shown.items())
    return s.services.initiative.data.line(
        s.persona.id,
        s.persona.language,
        "approval",
        name=rec.name,
        description=rec.description.strip().rstrip("."),
        details=f" ({args})" if args else "",
    )


def _short(value: Any, n: int = 60) -> str:
    text = str(value)
    return text if len(text) <= n else text[: n - 1] + "…"


async def ask(s: Session, rec: ApprovalRecord) -> None:
    """Send the request, and say the question: inside the reply that asks (its text and
    audio go on), or as a line of its own when no reply is running (asked again)."""
    q = question(s, rec)
    await s.events.approval_request(rec, q)
    r = s.response
    if s.approvals.asked_by_turn(rec.id) and r is not None and r.task is not None:
        line = q if not r.sent or r.sent_text.endswith((" ", "\n")) else " " + q
        line += " "  # what the model says once it is answered follows as a new sentence
        r.sent.append(line)
        await s.events.text_delta(r, line)
        await s.on_reply_delta(r, line)
    else:
        s.spawn(s.say(q))


async def resume(s: Session, rec: ApprovalRecord, decision: Decision) -> None:
    """The gate's `resume`: never blocks the answer's handler."""
    s.spawn(_continue(s, rec, decision))


async def _continue(s: Session, rec: ApprovalRecord, decision: Decision) -> None:
    async with s.own_lines:
        await s.let_reply_finish()
        if s.closed:
            return
        prompt = s.services.initiative.data.prompt(
            s.persona.id,
            s.persona.language,
            "approval_result",
            name=rec.name,
            status=decision.status,
        )
        s.log.info("approval_continued", call_id=rec.id, status=decision.status)
        await s.start_turn(prompt, source="approval", resumes=(rec, decision))
