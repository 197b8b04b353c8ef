"""What the task runner's parts share: the live task in memory, a screen frame, the
error a refused request raises, and what a listening session is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.store.base import TaskActionRecord, TaskRecord, TaskStatus

LIVE: tuple[TaskStatus, ...] = ("running", "paused", "failed")
Listener = Callable[[dict[str, Any]], Awaitable[None]]
# A clicked answer to a preview, written into the session's history before it acts:
# (the action, yes, the user's message with a no).
Answered = Callable[[TaskActionRecord, bool, str | None], Awaitable[None]]


class TaskError(Exception):
    """A request the task cannot take now: HTTP status, a code and a clear message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Frame:
    image: bytes
    seq: int


@dataclass
class Live:
    """What the runner holds in memory about the live task (the store holds the rest)."""

    task: TaskRecord
    screen: bytes | None = None  # the screen the pending action was planned on
    thumb: np.ndarray | None = None
    pending: TaskActionRecord | None = None
    previewed_at: float = 0.0
    approved_at: float | None = None
    tries: dict[int, int] = field(default_factory=dict)  # step -> actions tried
    busy: bool = False
    waiting_for_screen: bool = False
