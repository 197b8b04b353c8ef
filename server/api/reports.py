"""The after-session feedback report: GET /v1/sessions/{id}/report (JSON) and
/v1/sessions/{id}/report.html (a self-contained page: server/api/report_page.py).

Scores come from analysis.scoring on the session's stored messages and face/voice
timelines. A report is cached in the store once the session has ended and settled (the
hub's last timeline writes land right after ``ended_at``); before that it is recomputed on
every request, so a live session's report follows the conversation.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from analysis.report_text import seed_feedback
from analysis.scoring import REPORT_VERSION, score_session
from server.api.deps import ServicesDep, UserDep
from server.api.report_page import render_report_html
from server.api.usage import percentiles
from server.services import Services
from server.store.base import MessageRecord, SessionRecord, utcnow
from server.turns.latency import STEPS

router = APIRouter(prefix="/v1/sessions", tags=["reports"])

SETTLE_S = 10.0  # an ended session is cached once its end is this old (voice drain is 5 s)
MESSAGE_PAGE = 500
MAX_FACE_SAMPLES = 50_000  # ~14 h at the default 1 sample/s
MAX_VOICE_SAMPLES = 10_000
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)


# --------------------------------------------------------------------------- data


async def _messages(services: Services, user: str, session_id: str) -> list[MessageRecord]:
    out: list[MessageRecord] = []
    while True:
        page = await services.store.list_messages(
            user, session_id, limit=MESSAGE_PAGE, offset=len(out)
        )
        out.extend(page)
        if len(page) < MESSAGE_PAGE:
            return out


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


async def compute_report(services: Services, user: str, rec: SessionRecord) -> dict[str, Any]:
    """Score the session from the store now (scoring runs in a worker thread)."""
    store = services.store
    msgs, face, voice = await asyncio.gather(
        _messages(services, user, rec.id),
        store.list_samples(user, rec.id, kind="face", limit=MAX_FACE_SAMPLES),
        store.list_samples(user, rec.id, kind="voice", limit=MAX_VOICE_SAMPLES),
    )
    report = await asyncio.to_thread(score_session, msgs, face, voice)
    persona = services.personas.get(rec.persona_id)
    now = utcnow()
    return {
        "session_id": rec.id,
        "user_id": user,
        "persona": {"id": rec.persona_id, "name": persona.name if persona else rec.persona_id},
        "status": rec.status,
        "started_at": _iso(rec.started_at),
        "ended_at": _iso(rec.ended_at),
        "generated_at": now.isoformat(),
        "created_at": now.timestamp(),  # seed 003: epoch seconds
        "html_url": f"/v1/sessions/{rec.id}/report.html",
        **report.to_dict(),
        # what the user heard: end of speech -> each step of the reply, p50/p95 per step
        "voice_latency": voice_latency(msgs),
        "feedback": seed_feedback(report),
    }


def voice_latency(msgs: list[MessageRecord]) -> dict[str, dict[str, float | int | None]]:
    """p50/p95 of each step of the session's voice turns (end of speech -> first audio
    played)."""
    rows = [
        m.timings
        for m in msgs
        if m.role == "assistant" and m.timings and m.timings.get("eos_to_transcript_ms") is not None
    ]
    return {
        key: percentiles([float(t[key]) for t in rows if isinstance(t.get(key), int | float)])
        for key in (*STEPS, "turn_cpu_ms")
    }


def _settled(rec: SessionRecord) -> bool:
    if rec.status != "ended" or rec.ended_at is None:
        return False
    return (utcnow() - rec.ended_at).total_seconds() >= SETTLE_S


async def get_report(services: Services, user: str, session_id: str) -> dict[str, Any]:
    """The cached report of a settled ended session, else a fresh one; 404 when the
    session is unknown or another user's (the store filters by user)."""
    rec = await services.store.get_session(user, session_id)
    if rec is None:
        raise HTTPException(404, "No such session for this user.")
    if rec.status == "ended":
        cached = await services.store.get_report(user, session_id)
        if cached is not None and cached.get("version") == REPORT_VERSION:
            return cached | {"cached": True}
    report = await compute_report(services, user, rec)
    if _settled(rec):
        await services.store.put_report(user, session_id, report)
    return report | {"cached": False}


def _wants_html(request: Request) -> bool:
    """A browser navigating to report_url asks for text/html; API clients get JSON."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


# --------------------------------------------------------------------------- routes


@router.get(
    "/{session_id}/report",
    summary="The session's feedback report (JSON; HTML for browsers asking for text/html)",
    responses={404: {"description": "No such session for this user."}},
)
async def report_json(
    session_id: str, request: Request, services: ServicesDep, user: UserDep
) -> Response:
    report = await get_report(services, user, session_id)
    headers = {"Vary": "Accept", "Cache-Control": "no-store"}
    if _wants_html(request):
        return HTMLResponse(
            render_report_html(report), headers=headers | {"Content-Security-Policy": CSP}
        )
    return JSONResponse(report, headers=headers)


@router.get(
    "/{session_id}/report.html",
    summary="The session's feedback report as a page with charts",
    response_class=HTMLResponse,
    responses={404: {"description": "No such session for this user."}},
)
async def report_html(session_id: str, services: ServicesDep, user: UserDep) -> HTMLResponse:
    report = await get_report(services, user, session_id)
    return HTMLResponse(
        render_report_html(report),
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )
