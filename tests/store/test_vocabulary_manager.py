"""VocabularyManager over both adapters' `controlled_vocabulary` (SQLite and MongoDB-wire)."""

from __future__ import annotations

import pytest

from server.agent.memory.vocabulary import (
    DEFAULT_VOCABULARY,
    CategoryRefused,
    VocabularyManager,
    normalise,
)
from server.store import Store


async def test_start_seeds_defaults_once_and_terms_are_sorted(store: Store) -> None:
    vocab = VocabularyManager(store, max_terms=20)
    await vocab.start()
    await vocab.start()  # a restart inserts nothing twice
    assert await vocab.get_all_terms() == sorted(DEFAULT_VOCABULARY)


async def test_ensure_categories_normalises_and_inserts_only_missing(store: Store) -> None:
    vocab = VocabularyManager(store, max_terms=20)
    await vocab.start()
    assert await vocab.ensure_categories([" Work ", "Food-Allergy", "food allergy"]) == [
        "work",
        "food_allergy",
        "food_allergy",
    ]
    terms = await vocab.get_all_terms()
    assert terms == sorted([*DEFAULT_VOCABULARY, "food_allergy"])
    assert terms.count("food_allergy") == 1 and await store.add_vocabulary_terms(["work"]) == []


async def test_invalid_and_over_the_cap_are_refused_with_the_known_terms(store: Store) -> None:
    vocab = VocabularyManager(
        store, max_terms=len(DEFAULT_VOCABULARY) + 1, defaults=DEFAULT_VOCABULARY
    )
    await vocab.start()
    with pytest.raises(CategoryRefused, match=r"not a valid category.*Known: event"):
        await vocab.ensure_categories(["!!!"])
    assert await vocab.ensure_categories(["pets"]) == ["pets"]
    with pytest.raises(CategoryRefused, match="MEMORY_VOCABULARY_MAX"):
        await vocab.ensure_categories(["travel"])
    assert "travel" not in await vocab.get_all_terms()


async def test_check_accepts_known_terms_only_and_never_inserts(store: Store) -> None:
    vocab = VocabularyManager(store, max_terms=20)
    await vocab.start()
    assert await vocab.check("Personal Info") == "personal_info"
    with pytest.raises(CategoryRefused, match="Unknown category 'pets'; known: event"):
        await vocab.check("pets")
    assert "pets" not in await vocab.get_all_terms()


def test_normalise() -> None:
    assert normalise("  Daily -  Routine ") == "daily_routine"
