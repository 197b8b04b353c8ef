"""The screen task assistant end to end: a small ordering web app (tests/e2e/order_app) in
real Chromium, the real server, and the fake VLM answering per screen (a marker square in
each screenshot says which screen it is). Playwright plays the client: it clicks each
approved action at the coordinates the server gave and sends the screen back as a frame."""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser.conftest import CHROMIUM_ARGS
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread, WsClient, open_ws
from tests.tasks.screens import PERSONA_LINE, ScreenVLM, screen_of, step

APP_DIR = Path(__file__).resolve().parents[1] / "order_app"
MARKERS = {  # RGB of the marker square -> screen
    (255, 0, 0): "menu",
    (0, 255, 0): "item",
    (0, 0, 255): "options",
    (0, 255, 255): "options_selected",
    (255, 0, 255): "cart",
    (255, 255, 0): "checkout_ko",
    (128, 64, 0): "cart_en",
    (0, 128, 128): "checkout_en",
}


# Button centres: left 100 + 240/2, top + 60/2 (style.css, border-box).
ANSWERS: dict[str, list[dict[str, Any]]] = {
    "menu": [step("메뉴", "빅맥 세트", (220, 150), "빅맥 세트 상세", ["메뉴", "7,200원"])],
    "item": [
        # first a click on nothing (the page does not change), then the real button
        step("빅맥 세트 상세", "옵션 선택", (620, 520), "옵션 화면", ["빅맥 세트", "7,200원"]),
        step("빅맥 세트 상세", "옵션 선택", (220, 330), "옵션 화면", ["빅맥 세트", "7,200원"]),
    ],
    "options": [step("옵션", "콜라 라지", (220, 150), "콜라 라지 선택됨", ["옵션"])],
    "options_selected": [step("옵션", "장바구니 담기", (220, 350), "장바구니", ["옵션"])],
    "cart": [step("장바구니", "다음", (220, 330), "주문서", ["7,700원"], last=True)],
    # payment screens: the VLM does NOT flag them; the text rules must
    "checkout_ko": [
        step(
            "주문서",
            "결제하기",
            (220, 430),
            "결제 완료",
            ["주문서", "합계 7,700원", "카드번호", "유효기간", "결제하기"],
        )
    ],
    "cart_en": [step("Your bag", "Continue", (220, 330), "Order summary", ["$7.70"], last=True)],
    "checkout_en": [
        step(
            "Order summary",
            "Pay $7.70",
            (220, 430),
            "Paid",
            ["Order summary", "Total $7.70", "Card number", "Expiry (MM/YY)", "Pay $7.70"],
        )
    ],
}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app_url() -> Iterator[str]:
    """The ordering app on a loopback HTTP server."""
    handler = functools.partial(QuietHandler, directory=str(APP_DIR))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
async def page(chromium: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=60_000,
        )
        ctx = await browser.new_context(viewport={"width": 800, "height": 600})
        await ctx.add_init_script(
            "navigation.addEventListener('navigate', () => { window.__navigating = true; });"
        )
        yield await ctx.new_page()
        await browser.close()


@pytest.fixture
def srv(server_factory: Callable[..., ServerThread], llm: FakeOpenAI) -> ServerThread:
    llm.set_default(ScreenVLM(MARKERS, ANSWERS))
    return server_factory(llm, task_screen_wait_s=10.0)


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user}"}


class Client:
    """The client side of a task: REST, the WebSocket and the browser page."""

    def __init__(self, srv: ServerThread, user: str, page: Any, ws: WsClient) -> None:
        self.http = httpx.AsyncClient(base_url=srv.url, headers=auth(user), timeout=30)
        self.page, self.ws = page, ws

    async def send_screen(self) -> None:
        await self.ws.send_raw(b"\x02" + await self.page.screenshot(type="jpeg", quality=90))

    async def click(self, x: int, y: int) -> None:
        """Click, then wait for the page it leads to, if any: the init script flags a
        navigation as it starts (Navigation API), so a click that changes nothing is not
        mistaken for one still loading, and no screenshot lands mid-navigation."""
        from playwright.async_api import Error

        old = self.page.url
        await self.page.mouse.click(x, y)
        try:
            navigating = await self.page.evaluate("() => window.__navigating === true")
        except Error:  # the old document is already gone
            navigating = True
        if navigating or self.page.url != old:
            await self.page.wait_for_url(lambda u: u != old)
            await self.page.wait_for_load_state("load")

    async def execute(self, task_id: str, preview: dict[str, Any]) -> dict[str, Any]:
        """Say yes, click where the server says once told to, report it, send the screen;
        return the action's result event."""
        action_id = preview["action_id"]
        await self.ws.send({"type": "task.confirm", "task_id": task_id, "action_id": action_id})
        go = await self.ws.wait_for("task.action_execute", action_id=action_id)
        await self.click(go["coordinates"]["x"], go["coordinates"]["y"])
        await self.ws.send({"type": "task.executed", "task_id": task_id, "action_id": action_id})
        await self.send_screen()
        return await self.ws.wait_for("task.action_result", action_id=action_id, timeout=20)


async def consent(c: Client) -> None:
    items = dict.fromkeys(["automation_scope", "legal_risk", "research_only", "data_storage"], True)
    r = await c.http.post("/v1/users/consent", json={"items": items})
    assert r.status_code == 200 and r.json()["complete"] is True


async def test_order_reaches_checkout_and_stops_at_korean_payment_screen(
    srv: ServerThread, page: Any, app_url: str
) -> None:
    ws = await open_ws(srv, persona="haru", token="orderer")
    await ws.wait_for("session.created")
    c = Client(srv, "orderer", page, ws)
    body = {"app_name": "버거 주문", "task": "빅맥 세트 1개, 콜라 라지", "consent_confirmed": True}

    # consent is enforced: 403 naming every item until they are agreed
    r = await c.http.post("/v1/tasks", json=body)
    assert r.status_code == 403
    for item in ("automation_scope", "legal_risk", "research_only", "data_storage"):
        assert item in r.json()["detail"]
    await c.http.post("/v1/users/consent", json={"items": {"automation_scope": True}})
    r = await c.http.post("/v1/tasks", json=body)
    assert r.status_code == 403 and "automation_scope" not in r.json()["detail"]
    await consent(c)
    r = await c.http.post("/v1/tasks", json=body | {"consent_confirmed": False})
    assert r.status_code == 403

    # the session's screen feeds the task: no screenshot in the request
    await page.goto(f"{app_url}/menu.html")
    await c.send_screen()
    r = await c.http.post("/v1/tasks", json=body)
    assert r.status_code == 201, r.text
    started = r.json()
    task_id = started["task_id"]
    assert started["status"] == "running" and started["current_step"] == 0
    preview = started["next_action_preview"]
    assert preview["type"] == "click" and preview["target"] == "빅맥 세트"
    assert preview["coordinates"] == {"x": 220, "y": 150} and preview["final"] is False
    ev = await ws.wait_for("task.action_preview", action_id=preview["action_id"])
    assert ev["say"].startswith("이제 '빅맥 세트'")  # the fixed line (Korean persona)
    asked = await ws.wait_for("response.done")  # and the persona asks in its own words
    assert asked["text"] == f"{PERSONA_LINE} 빅맥 세트?"
    # step 1: menu -> item
    res = await c.execute(task_id, ev)
    assert res["status"] == "success" and res["diff"]["changed"] is True
    # step 2: the click hits nothing: detected, failed with options, retried
    ev = await ws.wait_for("task.action_preview", target="옵션 선택")
    res = await c.execute(task_id, ev)
    assert res["status"] == "failed" and res["reason"] == "no_change"
    failed = await ws.wait_for("task.failed", task_id=task_id)
    assert failed["reason"] == "no_change" and failed["retries_left"] == 3
    assert failed["options"] == ["retry", "take_over", "cancel"]
    await ws.send({"type": "task.control", "task_id": task_id, "command": "retry"})
    ev = await ws.wait_for("task.action_preview", target="옵션 선택")
    assert ev["coordinates"] == {"x": 220, "y": 330} and ev["step"] == 2
    assert (await c.execute(task_id, ev))["status"] == "success"
    # step 3: an option toggles in place (a local change still counts)
    ev = await ws.wait_for("task.action_preview", target="콜라 라지")
    assert (await c.execute(task_id, ev))["status"] == "success"
    ev = await ws.wait_for("task.action_preview", target="장바구니 담기")

    # pause mid-task: confirmations are refused; resume previews the step again
    r = await c.http.patch(f"/v1/tasks/{task_id}/pause")
    assert r.status_code == 200 and r.json()["status"] == "paused"
    await ws.wait_for("task.updated", status="paused")
    await ws.send({"type": "task.confirm", "task_id": task_id, "action_id": ev["action_id"]})
    err = await ws.wait_for("error")
    assert err["code"] in ("invalid_state", "not_pending") and err["fatal"] is False
    r = await c.http.patch(f"/v1/tasks/{task_id}/resume")
    assert r.status_code == 200 and r.json()["status"] == "running"
    ev = await ws.wait_for("task.action_preview", target="장바구니 담기")
    assert (await c.execute(task_id, ev))["status"] == "success"

    # the last step asks a final confirmation; after it the payment screen blocks the task
    ev = await ws.wait_for("task.action_preview", target="다음")
    assert ev["final"] is True and ev["say"].startswith("마지막 단계")
    assert (await c.execute(task_id, ev))["status"] == "success"
    blocked = await ws.wait_for("task.blocked", task_id=task_id)
    assert blocked["reason"] == "payment_screen"
    assert "card_or_account_fields" in blocked["signals"] and "vlm_flag" not in blocked["signals"]
    assert "payment_words" in blocked["signals"]
    assert await page.title() != "PAID"

    task = (await c.http.get(f"/v1/tasks/{task_id}")).json()
    assert task["status"] == "blocked_payment" and task["ended_at"] is not None
    assert task["next_action_preview"] is None
    assert not any(a["target"] == "결제하기" for a in task["actions"])  # never previewed
    ok = [a for a in task["actions"] if a["status"] == "success"]
    assert [a["target"] for a in ok] == [
        "빅맥 세트",
        "옵션 선택",
        "콜라 라지",
        "장바구니 담기",
        "다음",
    ]
    assert [s["action"] for s in task["route"]["actual_route"]] == [a["target"] for a in ok]
    assert task["route"]["planned_route"][0] == "빅맥 세트 고르기"
    m = task["metrics"]
    assert m["overall_success"] is True and m["steps_succeeded"] == 5
    assert m["step_success_rate"] == pytest.approx(5 / 6, abs=1e-3)  # one dead click
    assert m["mean_vlm_ms"] > 0 and m["mean_server_ms"] >= 0
    shot = srv.settings.data_dir / ok[0]["screenshot_ref"]
    assert shot.is_file() and screen_of(shot.read_bytes(), MARKERS) == "menu"
    await ws.conn.close()
    await c.http.aclose()


async def test_english_payment_screen_is_caught_and_cancel_proposes_the_way_home(
    srv: ServerThread, page: Any, app_url: str
) -> None:
    ws = await open_ws(srv, persona="emma", token="shopper")
    await ws.wait_for("session.created")
    c = Client(srv, "shopper", page, ws)
    await consent(c)
    body = {"app_name": "Burger", "task": "Order a Big Mac meal", "consent_confirmed": True}

    # cancel mid-task: the answer proposes the way back to the start screen
    await page.goto(f"{app_url}/menu.html")
    shot = await page.screenshot(type="png")
    r = await c.http.post("/v1/tasks", json=body | {"screenshot": base64.b64encode(shot).decode()})
    first = r.json()
    ev = await ws.wait_for(
        "task.action_preview", action_id=first["next_action_preview"]["action_id"]
    )
    assert ev["say"].startswith("Next I'll press")
    assert (await c.execute(first["task_id"], ev))["status"] == "success"
    await ws.wait_for("task.action_preview", target="옵션 선택")
    r = await c.http.patch(f"/v1/tasks/{first['task_id']}/cancel")
    assert r.status_code == 200
    cancelled = r.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["home"]["start_screen"] == "메뉴" and len(cancelled["home"]["steps"]) == 1
    done = await ws.wait_for("task.done", task_id=first["task_id"])
    assert done["status"] == "cancelled" and done["home"] == cancelled["home"]
    assert (await c.http.patch(f"/v1/tasks/{first['task_id']}/resume")).status_code == 409

    # English payment screen
    await page.goto(f"{app_url}/cart_en.html")
    await c.send_screen()
    r = await c.http.post("/v1/tasks", json=body)
    assert r.status_code == 201, r.text
    task_id = r.json()["task_id"]
    ev = await ws.wait_for("task.action_preview", target="Continue")
    assert ev["final"] is True and ev["say"].startswith("This is the last step")
    assert (await c.execute(task_id, ev))["status"] == "success"
    blocked = await ws.wait_for("task.blocked", task_id=task_id)
    assert {"card_or_account_fields", "price_with_pay_button"} <= set(blocked["signals"])
    assert "Pay $7.70" in blocked["evidence"]
    assert (await c.http.get(f"/v1/tasks/{task_id}")).json()["status"] == "blocked_payment"
    # another user sees none of it
    other = await httpx.AsyncClient(base_url=srv.url, headers=auth("else"), timeout=10).get(
        f"/v1/tasks/{task_id}"
    )
    assert other.status_code == 404
    await ws.conn.close()
    await c.http.aclose()
