"""The user's gaze over time, as turn taking reads it: are they looking at the screen now,
and did they just look back at it after looking away?

Why a timeline and not the latest frame: speakers look away while they think and look back
at the listener when they hand the turn over (Kendon 1967). The look back usually comes at
the end of the last words, before the pause the end-of-turn decision is made in, so the
gaze at the pause alone misses it. The face pipeline feeds every tracked frame; the voice
input asks at each step of a pause."""

from __future__ import annotations

from dataclasses import dataclass

# Looking away shorter than this is not looking away: tracker noise near the on-screen
# limit, a glance at the keyboard. Measured in wall time between tracked frames.
LOOK_AWAY_MIN_MS = 300.0


@dataclass(frozen=True)
class Gaze:
    on_screen: bool
    back_ms: float | None = None  # ms since the user looked back at the screen after
    # looking away for LOOK_AWAY_MIN_MS or more (None: on screen all along, or away now)


class GazeTimeline:
    """On/off-screen changes of one face, in monotonic seconds."""

    def __init__(self) -> None:
        self.on_screen: bool | None = None
        self.since = 0.0  # when the current state began
        self.away_s = 0.0  # how long the latest look away lasted (once back on screen)
        self.seen_at = 0.0  # the latest tracked frame

    def update(self, on_screen: bool, now: float) -> None:
        if on_screen != self.on_screen:
            if on_screen and self.on_screen is False:
                self.away_s = now - self.since
            self.on_screen, self.since = on_screen, now
        self.seen_at = now

    def at(self, now: float, max_age_s: float) -> Gaze | None:
        """The gaze now; None without a face tracked in the last ``max_age_s``."""
        if self.on_screen is None or now - self.seen_at > max_age_s:
            return None
        if not self.on_screen:
            return Gaze(False)
        looked_back = self.away_s * 1000 >= LOOK_AWAY_MIN_MS
        return Gaze(True, (now - self.since) * 1000 if looked_back else None)
