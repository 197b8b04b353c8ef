"""A TTS audio cache with a TTL and a size cap, in front of a (slow, paid or online) provider.

Greetings and repeated phrases are synthesized once: the whole audio of a sentence is kept,
keyed by provider, voice, text and, for cloned voices, the user's reference. A miss streams
through unchanged while it is recorded; only a synthesis that finished is stored."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from server.providers.tts.base import AudioChunk, TTSProvider, Voice

CacheKey = tuple[str, str, str, str]


@dataclass
class _Entry:
    chunks: list[AudioChunk]
    size: int
    expires: float


class CachedTTS(TTSProvider):
    """``inner`` behind an LRU of finished sentences (``ttl_s``, ``max_bytes`` in all).

    It wraps the whole provider, fallback included (a cache inside the fallback would answer
    the fallback's recovery probe from memory while the primary is still down).

    ``scope(user_id)`` names what else the audio depends on (a cloned voice's reference);
    ``on_lookup(user_id, hit)`` counts hits and misses (usage)."""

    def __init__(
        self,
        inner: TTSProvider,
        *,
        ttl_s: float,
        max_bytes: int,
        scope: Callable[[str | None], str] | None = None,
        on_lookup: Callable[[str | None, bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.scope = scope
        self.on_lookup = on_lookup
        self.clock = clock
        self._items: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def first_chunk_words(self) -> int:
        return self.inner.first_chunk_words

    def key(self, text: str, voice: str | None, user_id: str | None) -> CacheKey:
        return (self.inner.name, voice or "", self.scope(user_id) if self.scope else "", text)

    def _get(self, key: CacheKey) -> _Entry | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return entry

    def _drop(self, key: CacheKey) -> None:
        entry = self._items.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size

    def _put(self, key: CacheKey, chunks: list[AudioChunk]) -> None:
        size = sum(len(c.data) for c in chunks)
        if not chunks or size > self.max_bytes // 4:  # one sentence never takes the cache
            return
        self._drop(key)
        self._items[key] = _Entry(chunks, size, self.clock() + self.ttl_s)
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    async def synthesize(
        self, text: str, voice: str | None = None, *, user_id: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        key = self.key(text, voice, user_id)
        entry = self._get(key)
        self._count(user_id, entry is not None)
        if entry is not None:
            for chunk in entry.chunks:
                yield chunk
            return
        got: list[AudioChunk] = []
        fallback_in_use = self._degraded()
        async with aclosing(self.inner.synthesize(text, voice, user_id=user_id)) as it:
            async for chunk in it:
                got.append(chunk)
                yield chunk
        # Reached only when the synthesis finished. Audio of a fallback voice is not kept:
        # once the primary is back, the phrase should sound like the rest of the reply.
        if not fallback_in_use and not self._degraded():
            self._put(key, got)

    def _degraded(self) -> bool:
        return bool(getattr(self.inner, "degraded", False))

    def _count(self, user_id: str | None, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        if self.on_lookup is not None:
            self.on_lookup(user_id, hit)

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._items),
            "bytes": self._bytes,
            "hits": self.hits,
            "misses": self.misses,
        }

    async def list_voices(self) -> list[Voice]:
        return await self.inner.list_voices()

    async def close(self) -> None:
        self._items.clear()
        self._bytes = 0
        await self.inner.close()

    def __getattr__(self, name: str) -> object:
        # degraded / degraded_reason and other provider details pass through
        return getattr(self.inner, name)
