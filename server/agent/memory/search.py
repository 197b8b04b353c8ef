"""mem0's hybrid search with fewer hops: the same steps and the same scoring as
``AsyncMemory.search`` (mem0 2.2: semantic search over-fetched, BM25 keyword scores and entity
boosts where the store and spaCy provide them, ``score_and_rank``), for a query vector the
caller already has.

Why: mem0's search makes five worker-thread hops per call (lemmatise, extract entities,
embed, vector search, keyword search), and its embedding goes through the sync openai SDK in
one of them. Under load each hop waits for the GIL both ways; memory-on replies spent about
10 ms more before the model was asked (issue 16). Here the embedding is made on the event loop
(server/providers/embeddings.py), once for both tiers, and the store's calls run in ONE hop,
or on the loop itself when the store is embedded Qdrant and its last search was quick (a
thread hop then costs more than the search). tests/agent/test_memory.py checks the results
equal mem0's own search.

mem0 is imported inside the functions: importing it reads MEM0_TELEMETRY and MEM0_DIR, which
LongTermMemory.start sets first (and it is large: loaded only when memory is on)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

# mem0 promotes these payload keys to the top of a result; the rest (besides its own
# bookkeeping) go into ``metadata``
PROMOTED = ("user_id", "agent_id", "run_id", "actor_id", "role", "attributed_to", "expiration_date")
CORE = {"data", "hash", "created_at", "updated_at", "id", "text_lemmatized", *PROMOTED}
# a store search quicker than this runs on the event loop (embedded Qdrant only)
INLINE_MAX_S = 0.002


class StoreCalls:
    """Where one tier's store calls run: on the loop while embedded Qdrant stays quick, else
    in a worker thread (a server store does network I/O; a big embedded collection is slow)."""

    def __init__(self, mem: Any, embedded: bool) -> None:
        self.mem = mem
        self.embedded = embedded
        # the first search runs in a thread: it may load spaCy or BM25 models
        self.last_s = float("inf")

    @property
    def inline(self) -> bool:
        """The next search runs on the loop."""
        return self.last_s <= INLINE_MAX_S

    async def run(
        self, query: str, vector: list[float], filters: dict[str, Any], top_k: int
    ) -> tuple[list[Any], list[Any] | None, str, list[tuple[str, str]]]:
        if self.inline:
            return self._timed(query, vector, filters, top_k)
        return await asyncio.to_thread(self._timed, query, vector, filters, top_k)

    def _timed(
        self, query: str, vector: list[float], filters: dict[str, Any], top_k: int
    ) -> tuple[list[Any], list[Any] | None, str, list[tuple[str, str]]]:
        t = time.perf_counter()
        try:
            return store_calls(self.mem, query, vector, filters, top_k)
        finally:
            if self.embedded:
                self.last_s = time.perf_counter() - t


def store_calls(
    mem: Any, query: str, vector: list[float], filters: dict[str, Any], top_k: int
) -> tuple[list[Any], list[Any] | None, str, list[tuple[str, str]]]:
    """mem0's steps 1, 3 and 4 in one go: the query's lemmas and entities (the query itself
    and none without spaCy), the semantic hits and the keyword hits (None without BM25)."""
    from mem0.utils.entity_extraction import extract_entities
    from mem0.utils.lemmatization import lemmatize_for_bm25

    lemmas = lemmatize_for_bm25(query)
    entities = extract_entities(query)
    store = mem.vector_store
    semantic = store.search(query=query, vectors=vector, top_k=top_k, filters=filters)
    keyword = store.keyword_search(query=lemmas, top_k=top_k, filters=filters)
    return semantic, keyword, lemmas, entities


async def search(
    mem: Any,
    calls: StoreCalls,
    query: str,
    vector: list[float],
    filters: dict[str, Any],
    limit: int,
    threshold: float = 0.1,
) -> list[dict[str, Any]]:
    """What ``mem.search(query, filters=filters, top_k=limit)["results"]`` returns."""
    from mem0.memory.main import _payload_is_expired
    from mem0.utils.scoring import get_bm25_params, normalize_bm25, score_and_rank

    semantic, keyword, lemmas, entities = await calls.run(
        query, vector, filters, max(limit * 4, 60)
    )
    bm25: dict[str, float] = {}
    if keyword is not None:
        midpoint, steepness = get_bm25_params(query, lemmatized=lemmas)
        for hit in keyword:
            if hit.score and hit.score > 0:
                bm25[str(hit.id)] = normalize_bm25(hit.score, midpoint, steepness)
    boosts: dict[str, float] = {}
    if entities:  # spaCy found some: mem0's own entity store lookup
        boosts = await mem._compute_entity_boosts_async(entities, filters)
    candidates = [
        {"id": str(hit.id), "score": hit.score, "payload": hit.payload}
        for hit in semantic
        if not _payload_is_expired(hit.payload)
    ]
    ranked = score_and_rank(
        semantic_results=candidates,
        bm25_scores=bm25,
        entity_boosts=boosts,
        threshold=threshold,
        top_k=limit,
    )
    return [item for scored in ranked if (item := _item(scored)) is not None]


def _item(scored: dict[str, Any]) -> dict[str, Any] | None:
    """One result in mem0's shape (MemoryItem's fields, promoted keys, metadata)."""
    payload = scored.get("payload") or {}
    if not payload.get("data"):
        return None
    item: dict[str, Any] = {
        "id": scored["id"],
        "memory": payload["data"],
        "hash": payload.get("hash"),
        "metadata": None,
        "score": scored["score"],
        "created_at": payload.get("created_at"),
        "updated_at": payload.get("updated_at"),
    }
    item.update((k, payload[k]) for k in PROMOTED if k in payload)
    if extra := {k: v for k, v in payload.items() if k not in CORE}:
        item["metadata"] = extra
    return item
