"""Payment guard: a screen is a payment screen when the VLM says so or when its text does
(seed 001 section 7.3: stop automatically at payment screens). Either one blocks: a false
alarm costs the user one manual step, a miss could cost money.

The rules look only at what is on the screen (description, visible text, element labels),
never at the task wording or the model's reasoning."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from server.tasks.schema import StepAnalysis

# Words that name paying. "checkout" counts: a cart whose next button is "Checkout" stops
# there, one screen before the card form, which is the safe side.
PAY_WORDS = re.compile(
    r"결제|지불|구매하기|\bpay(?:ment|ments)?\b|\bcheck ?out\b|\bplace (?:your )?order\b"
    r"|\bbuy now\b|\bcomplete purchase\b",
    re.I,
)
CARD_FIELDS = re.compile(
    r"카드\s*번호|카드번호|유효\s*기간|\bcvc\b|\bcvv\b|security code|card number|name on card"
    r"|\bexpir(?:y|ation|es)\b|\bmm\s*/\s*yy\b|계좌\s*번호|계좌이체|account number|\biban\b"
    r"|routing number|sort code",
    re.I,
)
PRICE = re.compile(
    r"[₩$€£¥]\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s?(?:원|won\b|krw\b|usd\b)", re.I
)


@dataclass
class PaymentVerdict:
    blocked: bool
    reasons: list[str] = field(default_factory=list)  # which signals fired
    evidence: list[str] = field(default_factory=list)  # the texts that fired them


def check_payment(a: StepAnalysis) -> PaymentVerdict:
    """The VLM's flag plus the text rules; every signal that fired is reported."""
    labels = [x.element for x in a.available_actions] + [a.recommended_action.target]
    screen = [a.current_screen, *a.visible_text]
    reasons: list[str] = []
    evidence: list[str] = []

    def hit(reason: str, texts: list[str], pattern: re.Pattern[str]) -> list[str]:
        found = [t for t in texts if pattern.search(t)]
        if found:
            reasons.append(reason)
            evidence.extend(found[:3])
        return found

    if a.is_payment_screen:
        reasons.append("vlm_flag")
    hit("card_or_account_fields", screen + labels, CARD_FIELDS)
    pay_buttons = [t for t in labels if PAY_WORDS.search(t)]
    if pay_buttons and any(PRICE.search(t) for t in screen + labels):
        reasons.append("price_with_pay_button")
        evidence.extend(pay_buttons[:3])
    hit("payment_words", screen + labels, PAY_WORDS)
    return PaymentVerdict(bool(reasons), reasons, list(dict.fromkeys(evidence)))
