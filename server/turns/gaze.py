"""The user's gaze over time, as turn taking reads it: are they looking at the screen now,
and did they just look back at it after looking away?

Why a timeline and not the latest frame: speakers look away while they think and look back
at the listener when they hand the turn over (Kendon 1967). The look back usually comes at
the end of the last words, before the pause the end-of-turn decision is made in, so the
gaze at the pause alone misses it. The face pipeline feeds every tracked frame; the voice
input asks at each step of a pause."""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

# Looking away shorter than this is not looking away: tracker noise near the on-screen
# limit, a glance at the keyboard. Measured in wall time between tracked frames.
LOOK_AWAY_MIN_MS = 300.0
HISTORY_S = 10.0  # gaze changes kept (the voice input lags by far less)


@dataclass(frozen=True)
class Gaze:
    on_screen: bool
    back_ms: float | None = None  # ms since the user looked back at the screen after
    # looking away for LOOK_AWAY_MIN_MS or more (None: on screen all along, or away now)


class GazeTimeline:
    """On/off-screen changes of one face, in monotonic seconds, for the last ``HISTORY_S``:
    the voice input asks what the gaze was when the audio it is deciding on arrived (under
    load its analysis runs behind the face frames, which are cheap)."""

    def __init__(self) -> None:
        self.changes: deque[tuple[float, bool]] = deque()  # (since, on_screen)
        self.seen_at = 0.0  # the latest tracked frame

    def update(self, on_screen: bool, now: float) -> None:
        if not self.changes or self.changes[-1][1] != on_screen:
            self.changes.append((now, on_screen))
            while len(self.changes) > 2 and now - self.changes[1][0] > HISTORY_S:
                self.changes.popleft()
        self.seen_at = now

    def at(self, now: float, max_age_s: float, when: float | None = None) -> Gaze | None:
        """The gaze at ``when`` (default: now); None without a face tracked in the last
        ``max_age_s`` or before ``when``."""
        t = now if when is None else min(when, now)
        if not self.changes or now - self.seen_at > max_age_s or t < self.changes[0][0]:
            return None
        i = bisect.bisect_right(self.changes, t, key=lambda c: c[0]) - 1
        since, on = self.changes[i]
        if not on:
            return Gaze(False)
        away_s = since - self.changes[i - 1][0] if i > 0 else 0.0
        looked_back = away_s * 1000 >= LOOK_AWAY_MIN_MS
        return Gaze(True, (t - since) * 1000 if looked_back else None)
