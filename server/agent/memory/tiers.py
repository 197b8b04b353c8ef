"""Fresh/old memory tiers (seed 000, 2.3.1 D): two mem0 collections, each in its own
embedded Qdrant folder (an embedded Qdrant folder admits one client, and each mem0 instance
opens its own). Moving a memory copies its point (same id, vector and payload, so its
`created_at`/`updated_at` survive) and then deletes it from the source: a crash in between
leaves a copy in both tiers, never a lost memory; the next move overwrites the copy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

BATCH = 256


def _collection(mem: Any) -> tuple[Any, str]:
    vs = mem.vector_store
    return vs.client, vs.collection_name


def _points(mem: Any, ids: list[str]) -> list[Any]:
    client, name = _collection(mem)
    return list(client.retrieve(name, ids=ids, with_payload=True, with_vectors=True))


def move_points(src: Any, dst: Any, ids: list[str]) -> int:
    """Blocking: move these points from one mem0 instance's collection to another's."""
    if not ids:
        return 0
    points = _points(src, ids)
    if not points:
        return 0
    from qdrant_client import models  # only with memory on: not loaded with the server

    dst_client, dst_name = _collection(dst)
    dst_client.upsert(
        dst_name,
        points=[models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points],
    )
    src_client, src_name = _collection(src)
    src_client.delete(src_name, points_selector=models.PointIdsList(points=[p.id for p in points]))
    return len(points)


def ids_updated_before(mem: Any, cutoff: datetime) -> list[str]:
    """Blocking: ids of every point whose payload `updated_at` is older than cutoff."""
    client, name = _collection(mem)
    out: list[str] = []
    offset = None
    while True:
        points, offset = client.scroll(
            name, limit=BATCH, offset=offset, with_payload=["updated_at"], with_vectors=False
        )
        for p in points:
            stamp = (p.payload or {}).get("updated_at")
            if stamp and _parse(stamp) < cutoff:
                out.append(str(p.id))
        if offset is None:
            return out


def has_point(mem: Any, memory_id: str) -> bool:
    client, name = _collection(mem)
    try:
        return bool(client.retrieve(name, ids=[memory_id], with_payload=False))
    except ValueError:  # not a valid point id (Qdrant ids are UUIDs or integers)
        return False


def _parse(stamp: str) -> datetime:
    t = datetime.fromisoformat(stamp)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
