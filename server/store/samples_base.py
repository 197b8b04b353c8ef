"""Analysis samples (downsampled face/voice timelines of a session): the record and that
part of the store contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    """One downsampled analysis point of a session timeline (face, voice, ...)."""

    kind: str
    t_ms: int
    data: dict[str, Any] = field(default_factory=dict)


class SampleStore(ABC):
    @abstractmethod
    async def add_samples(self, user_id: str, session_id: str, samples: list[Sample]) -> None: ...

    @abstractmethod
    async def list_samples(
        self, user_id: str, session_id: str, kind: str | None = None, limit: int = 10_000
    ) -> list[Sample]:
        """Ordered by t_ms."""
