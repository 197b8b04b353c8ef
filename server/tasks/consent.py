"""The four consent items of seed 001 section 7.2, with the notice of section 7.4."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.store.base import CONSENT_ITEMS
from server.tasks.views import iso

CONSENT_TEXT: dict[str, dict[str, str]] = {
    "automation_scope": {
        "ko": "자동화 범위: 주문 과정 중 결제 이전 단계까지만 자동화되며, 결제 화면 감지 시 "
        "자동으로 중단됩니다.",
        "en": "Scope: only the steps before payment are automated; a payment screen stops "
        "the task at once.",
    },
    "legal_risk": {
        "ko": "타사 애플리케이션 자동화는 해당 앱의 이용약관을 위반할 수 있습니다.",
        "en": "Automating another company's app may breach that app's terms of use.",
    },
    "research_only": {
        "ko": "학습 및 연구 목적으로만 사용합니다 (상업적 자동화 금지).",
        "en": "For learning and research only (no commercial automation).",
    },
    "data_storage": {
        "ko": "작업 기록, 액션 기록과 스크린샷의 수집 및 저장에 동의합니다.",
        "en": "Task and action records and screenshots are collected and stored.",
    },
}
assert set(CONSENT_TEXT) == set(CONSENT_ITEMS)
NOTICE = {
    "ko": "본 기능은 학습 및 연구 목적으로만 사용됩니다. 사용자는 본 도구 사용으로 인한 모든 "
    "책임을 부담합니다.",
    "en": "This feature is for learning and research only. You are responsible for how you use it.",
}


def missing_items(agreed: dict[str, datetime]) -> list[str]:
    return [i for i in CONSENT_ITEMS if i not in agreed]


def consent_json(agreed: dict[str, datetime]) -> dict[str, Any]:
    return {
        "items": {
            i: {"agreed": i in agreed, "agreed_at": iso(agreed.get(i)), "text": CONSENT_TEXT[i]}
            for i in CONSENT_ITEMS
        },
        "complete": not missing_items(agreed),
        "missing": missing_items(agreed),
        "notice": NOTICE,
    }
