"""The controlled vocabulary (memory categories; one list for the whole server): that part
of the store contract (adapters: server/store/vocabulary.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod


class VocabularyStore(ABC):
    # The table/collection `controlled_vocabulary` is created by open(). Terms are stored
    # as given: server/agent/memory/vocabulary.py normalises them first.

    @abstractmethod
    async def vocabulary_terms(self) -> list[str]:
        """Every term, sorted."""

    @abstractmethod
    async def add_vocabulary_terms(self, terms: list[str]) -> list[str]:
        """Insert the terms not stored yet (insert-or-ignore / upsert, safe under races);
        return those this call inserted."""
