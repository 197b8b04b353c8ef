"""The Whisper encoder call as ``WhisperSTT`` (server/providers/stt.py) wraps it: the window
actually encoded, the encoder output the two passes of ``transcribe_twice`` share, and the
point where a best-effort partial gives way to a decode that waits for the model.

Why a give-way point: one model lock serializes decodes, and the decode that waits behind a
partial is usually the pause's decode, which the user's reply waits for (lat19c measured 2-6
of 12 turns queued, 40-200 ms). CTranslate2 4.8 cannot stop a running ``generate`` (no
per-token callback), so a partial gives way where it can: before and after its encoder run,
when a decode is waiting for the lock, it stops (``GaveWay``) and its token decoding, the
larger part of its time, never runs. Its words are not lost: the waiting decode is newer."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


class GaveWay(Exception):
    """A best-effort decode stopped for a decode waiting for the model."""


class EncoderHook:
    """State of the call in progress (set under the model lock) and the decodes waiting."""

    def __init__(self) -> None:
        self.frames: int | None = None  # encoder window (mel frames) of the call in progress
        # ``transcribe_twice``: the encoder output of its first pass, for its second one,
        # keyed by what was encoded (shape and a digest of the features): an explicit key
        # that a different input cannot match (dropped when the call ends)
        self.shared: dict[tuple[tuple[int, ...], bytes], Any] | None = None
        self.gives_way = False  # the call in progress stops for a waiting decode
        self._waiting = 0
        self._count = threading.Lock()

    @property
    def waiters(self) -> int:
        """Decodes waiting for the model lock now."""
        return self._waiting

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a blocking wait for the model lock: a partial holding it gives way."""
        with self._count:
            self._waiting += 1
        try:
            yield
        finally:
            with self._count:
                self._waiting -= 1

    def _give_way(self) -> None:
        if self.gives_way and self._waiting:
            raise GaveWay

    def wrap(self, full_encode: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``WhisperModel.encode`` with the window, the shared output and the give-way point."""

        def encode(features: Any) -> Any:
            self._give_way()
            n = self.frames
            x = features[..., :n] if n else features
            shared = self.shared
            if shared is None:
                out = full_encode(x)
            else:
                key = (x.shape, hashlib.blake2b(np.ascontiguousarray(x).data).digest())
                if key not in shared:
                    shared[key] = full_encode(x)
                out = shared[key]
            self._give_way()
            return out

        return encode
