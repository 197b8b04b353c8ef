"""Long-term memory: the mem0 wrapper (longterm.py), what it returns (hits.py), how mem0 is
configured (mem0_setup.py), the controlled vocabulary (vocabulary.py), fresh/old tiers
(tiers.py) and the cleanup job (cleanup.py)."""

from server.agent.memory.hits import MemoryHit, MemoryNotFound, MemoryUnavailable
from server.agent.memory.longterm import LongTermMemory
from server.agent.memory.mem0_setup import mem0_config
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
