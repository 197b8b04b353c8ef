"""GET /v1/usage: the caller's counters, all time and per UTC day in a range, with reply
latency percentiles per day and per persona (the studio's dashboard reads this)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query

from server.api.deps import ServicesDep, UserDep
from server.store.base import utcnow

router = APIRouter(prefix="/v1/usage", tags=["usage"])

MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
# voice turns add the latency the user hears (server/turns/latency.py)
LATENCIES = ("ttft_ms", "ttfa_ms", "eos_to_first_audio_ms", "eos_to_played_ms")
# hit / (hit + miss) pairs reported as rates
HIT_RATES = {"vlm": ("vlm_cache_hits", "vlm_calls"), "tts": ("tts_cache_hits", "tts_cache_misses")}


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None}
    p50, p95 = np.percentile(np.asarray(values, dtype=float), [50, 95])
    return {"n": len(values), "p50": round(float(p50), 1), "p95": round(float(p95), 1)}


def latency(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    out = {}
    for key in LATENCIES:
        vals = [float(t[key]) for t in rows if isinstance(t.get(key), int | float)]
        out[key] = percentiles(vals)
    return out


def hit_rates(counters: dict[str, int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, (hit_key, miss_key) in HIT_RATES.items():
        hits, misses = counters.get(hit_key, 0), counters.get(miss_key, 0)
        out[name] = round(hits / (hits + misses), 4) if hits + misses else None
    return out


@router.get("", summary="The caller's usage: all-time counters and daily buckets in a range")
async def usage(
    services: ServicesDep,
    user: UserDep,
    first: Annotated[date | None, Query(alias="from", description="first UTC day")] = None,
    last: Annotated[date | None, Query(alias="to", description="last UTC day")] = None,
) -> dict[str, Any]:
    last = last or utcnow().date()
    first = first or last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if first > last:
        raise HTTPException(400, "'from' must not be after 'to'.")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise HTTPException(400, f"A range covers at most {MAX_RANGE_DAYS} days.")
    store = services.store
    totals = await store.get_usage(user)
    buckets = await store.get_usage_daily(user, first.isoformat(), last.isoformat())
    since = datetime.combine(first, time(), UTC)
    until = datetime.combine(last + timedelta(days=1), time(), UTC)
    timings = await store.list_reply_timings(user, since, until)
    by_day: dict[str, list[dict[str, Any]]] = {}
    by_persona: dict[str, list[dict[str, Any]]] = {}
    for created, persona, t in timings:
        by_day.setdefault(created.date().isoformat(), []).append(t)
        by_persona.setdefault(persona, []).append(t)
    days = []
    for i in range((last - first).days + 1):
        day = (first + timedelta(days=i)).isoformat()
        counters = buckets.get(day, {})
        days.append(
            {
                "day": day,
                "counters": counters,
                "cache_hit_rate": hit_rates(counters),
                "latency": latency(by_day.get(day, [])),
            }
        )
    in_range: dict[str, int] = {}
    for counters in buckets.values():
        for k, v in counters.items():
            in_range[k] = in_range.get(k, 0) + v
    return {
        "user_id": user,
        "usage": totals,
        "range": {"from": first.isoformat(), "to": last.isoformat()},
        "range_totals": in_range,
        "cache_hit_rate": hit_rates(in_range),
        "days": days,
        "personas": {
            pid: {"replies": len(rows), "latency": latency(rows)}
            for pid, rows in sorted(by_persona.items())
        },
    }
