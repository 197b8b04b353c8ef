"""LangGraph's checkpoint serializer, remembering the checkpoints it encoded by their bytes.

Each turn reads the thread's latest checkpoint, and that is almost always the one the
turn before wrote in this process: decoding it again (msgpack, then a pydantic message
object per history message, up to HISTORY_MESSAGES of them) was the largest part of the
checkpoint's CPU per turn. Now `dumps_typed` keeps what it encoded under the bytes it
produced, and `loads_typed` of the very same bytes hands back fresh containers around the
same values instead of decoding them. Keyed by the whole blob, a hit is the stored
content by construction: a checkpoint written by another process, another version or
edited in the file has other bytes and is decoded as before."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

# keys every LangGraph checkpoint dict has (a pending write's value never has them all)
_CHECKPOINT_KEYS = frozenset({"v", "id", "ts", "channel_values", "channel_versions"})


class CheckpointMemo(JsonPlusSerializer):
    """JsonPlusSerializer plus a bounded LRU of the last ``entries`` checkpoints encoded
    (one per active thread is what pays; 0 turns it off). Shallow copies of the saver made
    by LangGraph's allowlist share the memo."""

    def __init__(self, entries: int = 256, **kw: Any) -> None:
        super().__init__(**kw)
        self._entries = entries
        self._memo: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()  # the saver's thread, and sync callers elsewhere
        self.hits = 0

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        type_, data = super().dumps_typed(obj)
        if (
            self._entries
            and type_ == "msgpack"
            and isinstance(obj, dict)
            and _CHECKPOINT_KEYS <= obj.keys()
        ):
            kept = _fresh(obj)  # later changes to the caller's dicts do not reach it
            with self._lock:
                self._memo[data] = kept
                self._memo.move_to_end(data)
                while len(self._memo) > self._entries:
                    self._memo.popitem(last=False)
        return type_, data

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        if data[0] == "msgpack" and self._entries:
            with self._lock:
                kept = self._memo.get(data[1])
                if kept is not None:
                    self._memo.move_to_end(data[1])
                    self.hits += 1
            if kept is not None:
                return _fresh(kept)
        return super().loads_typed(data)


def _fresh(cp: dict[str, Any]) -> dict[str, Any]:
    """New containers around the same values: LangGraph updates a loaded checkpoint's
    version maps in place, and a channel's list must not be shared between two runs. The
    messages themselves are shared, as they are between the steps of one run (nothing
    changes a message once it is in the state)."""
    out = dict(cp)
    out["channel_values"] = {
        k: list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v
        for k, v in cp["channel_values"].items()
    }
    out["channel_versions"] = dict(cp["channel_versions"])
    if "versions_seen" in cp:
        out["versions_seen"] = {k: dict(v) for k, v in cp["versions_seen"].items()}
    if isinstance(cp.get("pending_sends"), list):
        out["pending_sends"] = list(cp["pending_sends"])
    return out
