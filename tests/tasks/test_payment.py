"""The payment guard: the VLM's flag and the text rules, on Korean and English screens."""

from __future__ import annotations

from typing import Any

import pytest

from server.tasks.payment import check_payment
from server.tasks.schema import StepAnalysis


def analysis(
    screen: str, visible: list[str], buttons: list[str], *, flag: bool = False
) -> StepAnalysis:
    actions = [
        {"type": "click", "element": b, "coordinates": {"x": 10, "y": 10}, "confidence": 0.9}
        for b in buttons
    ]
    data: dict[str, Any] = {
        "current_screen": screen,
        "available_actions": actions,
        "recommended_action": {
            "type": "click",
            "target": buttons[0] if buttons else "",
            "reasoning": "we must not pay, the user pays",  # reasoning is never scanned
            "coordinates": {"x": 10, "y": 10},
            "text": "",
            "description": "next",
        },
        "visible_text": visible,
        "is_payment_screen": flag,
        "matches_expected_screen": True,
        "expected_next_screen": "",
        "is_last_step": False,
        "task_complete": False,
        "remaining_plan": [],
    }
    return StepAnalysis.model_validate(data)


@pytest.mark.parametrize(
    ("screen", "visible", "buttons", "signals"),
    [
        (
            "주문서",
            ["합계 7,700원", "카드번호", "유효기간"],
            ["결제하기"],
            {"card_or_account_fields", "price_with_pay_button", "payment_words"},
        ),
        (
            "Order summary",
            ["Total $7.70", "Card number", "CVC"],
            ["Pay $7.70"],
            {"card_or_account_fields", "price_with_pay_button", "payment_words"},
        ),
        ("계좌이체", ["은행 선택", "계좌번호 입력"], ["다음"], {"card_or_account_fields"}),
        ("Bag", ["Big Mac meal $7.70"], ["Checkout"], {"price_with_pay_button", "payment_words"}),
        ("Review", ["Delivery to home"], ["Place order"], {"payment_words"}),
        ("결제 수단 선택", ["카카오페이", "토스"], ["선택"], {"payment_words"}),
    ],
)
def test_text_rules_catch_payment_screens(
    screen: str, visible: list[str], buttons: list[str], signals: set[str]
) -> None:
    v = check_payment(analysis(screen, visible, buttons))
    assert v.blocked is True
    assert set(v.reasons) == signals
    assert v.evidence  # the texts that fired are reported


def test_the_vlm_flag_alone_blocks() -> None:
    v = check_payment(analysis("A form", ["Name", "Address"], ["Next"], flag=True))
    assert v.blocked and v.reasons == ["vlm_flag"]


@pytest.mark.parametrize(
    ("screen", "visible", "buttons"),
    [
        ("메뉴", ["빅맥 세트", "7,200원"], ["빅맥 세트", "치즈버거"]),
        ("장바구니", ["빅맥 세트 7,700원"], ["다음"]),
        ("Settings", ["Display", "Repayment plan info"], ["Save"]),  # 'display', 'repay'
        ("Product", ["$12.00", "PayPal accepted later"], ["Add to bag"]),
    ],
)
def test_ordinary_screens_pass(screen: str, visible: list[str], buttons: list[str]) -> None:
    v = check_payment(analysis(screen, visible, buttons))
    assert v.blocked is False and v.reasons == []
