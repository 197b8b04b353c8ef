"""The controlled vocabulary of memory categories (seed 000, 2.3.1 C).

Terms live in the store's `controlled_vocabulary` table/collection (both adapters). A
category is normalised (lower case, spaces and dashes to `_`) before it is checked:

- adding a memory (`ensure_categories`): a valid new term is inserted (insert-or-ignore),
  so the vocabulary grows with the user's life, up to `MEMORY_VOCABULARY_MAX` terms; an
  invalid term, or a new one beyond the cap, is refused with the list of known terms;
- searching (`check`): the term must already exist, else the search is refused with the
  list of known terms (a search never creates a category).
"""

from __future__ import annotations

import re

from server.store.base import Store

DEFAULT_VOCABULARY = (
    "general",
    "personal_info",
    "preference",
    "relationship",
    "location",
    "work",
    "health",
    "hobby",
    "schedule",
    "event",
)
AUTO_CATEGORY = "general"  # what background extraction stamps (it does not classify)
_TERM = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class CategoryRefused(ValueError):
    """A category that is not (and may not become) part of the vocabulary."""


def normalise(term: str) -> str:
    return re.sub(r"[\s\-]+", "_", term.strip().lower()).strip("_")


class VocabularyManager:
    def __init__(
        self, store: Store, max_terms: int, defaults: tuple[str, ...] = DEFAULT_VOCABULARY
    ):
        self.store = store
        self.max_terms = max_terms
        self.defaults = defaults

    async def start(self) -> None:
        """Seed the default vocabulary (only the missing terms are inserted)."""
        await self.store.add_vocabulary_terms([normalise(t) for t in self.defaults])

    async def get_all_terms(self) -> list[str]:
        return await self.store.vocabulary_terms()

    async def ensure_categories(self, terms: list[str]) -> list[str]:
        """Normalise; insert the valid terms not known yet; return the normalised terms."""
        out = [normalise(t) for t in terms]
        for raw, term in zip(terms, out, strict=True):
            if not _TERM.match(term):
                raise CategoryRefused(
                    f"{raw!r} is not a valid category: use a short word in lower case "
                    f"(letters, digits, _). Known: {', '.join(await self.get_all_terms())}."
                )
        known = set(await self.get_all_terms())
        new = [t for t in dict.fromkeys(out) if t not in known]
        if new and len(known) + len(new) > self.max_terms:
            raise CategoryRefused(
                f"The vocabulary is full ({self.max_terms} categories, MEMORY_VOCABULARY_MAX); "
                f"use one of: {', '.join(sorted(known))}."
            )
        if new:
            await self.store.add_vocabulary_terms(new)
        return out

    async def check(self, term: str) -> str:
        """The normalised term if it is known, else CategoryRefused listing the known ones."""
        norm = normalise(term)
        terms = await self.get_all_terms()
        if norm not in terms:
            raise CategoryRefused(f"Unknown category {term!r}; known: {', '.join(terms)}.")
        return norm
