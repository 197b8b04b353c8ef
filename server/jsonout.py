"""The one serializer for JSON the server sends: always valid, strictly parseable JSON.

Why: a browser's JSON.parse rejects NaN and Infinity, and a string holding a lone UTF-16
surrogate cannot be encoded as UTF-8, so the socket write raises and the session goes
silent. Inputs are validated at the edges (finite numbers, no lone surrogates), so the
fallback below should never run; when it does, it logs which event needed it and sends a
sanitized copy (non-finite floats -> null, lone surrogates -> U+FFFD) instead of failing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from server.logging import get_logger

log = get_logger(__name__)


def dumps(obj: Any) -> str:
    """Compact UTF-8 JSON text (non-ASCII kept raw) that encodes to valid UTF-8."""
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or +-Infinity somewhere
        log.warning("json_out_non_finite", event_type=_type_of(obj))
        text = json.dumps(sanitize(obj), ensure_ascii=False, allow_nan=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            log.warning("json_out_lone_surrogate", event_type=_type_of(obj))
            text = json.dumps(sanitize(obj), ensure_ascii=False, allow_nan=False)
    return text


def dumps_flat(obj: dict[str, Any]) -> str:
    """dumps() of a flat event of strings, integers and flags: a text delta's frame, sent
    per streamed token. orjson is about 9x faster than json here; a NaN cannot occur
    without floats, and a lone surrogate (which orjson refuses) goes through dumps()."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return dumps(obj)


def sanitize(obj: Any) -> Any:
    """A copy with non-finite floats as None and lone surrogates replaced by U+FFFD."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str):
        return clean_text(obj)
    if isinstance(obj, dict):
        return {clean_text(str(k)): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [sanitize(v) for v in obj]
    return obj


def clean_text(s: str) -> str:
    """Lone surrogates -> U+FFFD; a correctly paired surrogate pair becomes its character."""
    if s.isascii():
        return s
    return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _type_of(obj: Any) -> str | None:
    return obj.get("type") if isinstance(obj, dict) else None
