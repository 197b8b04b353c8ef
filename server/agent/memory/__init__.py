"""Long-term memory: the mem0 wrapper (longterm.py), the controlled vocabulary
(vocabulary.py), fresh/old tiers (tiers.py) and the cleanup job (cleanup.py)."""

from server.agent.memory.longterm import (
    LongTermMemory,
    MemoryHit,
    MemoryNotFound,
    MemoryUnavailable,
    mem0_config,
)
from server.agent.memory.vocabulary import CategoryRefused, VocabularyManager

__all__ = [
    "CategoryRefused",
    "LongTermMemory",
    "MemoryHit",
    "MemoryNotFound",
    "MemoryUnavailable",
    "VocabularyManager",
    "mem0_config",
]
